//! Many WebSockets opened at once through the gateway to a fast upstream, each sending
//! its first frame the moment it has its 101. With pingora-proxy 0.9.1 as released, a
//! 101 read before the upgrade request's own empty body end tore the tunnel down
//! (cloudflare/pingora#946): the client got its 101 and then EOF. The vendored
//! pingora-proxy carries the fix; here every connection must get its echo. The race
//! needs the upstream to beat the gateway's own request task, which the release
//! gateway in its own process hits about 1 % of the time (the load harness's
//! `ws-hold` saw 1–2 of 300) but this in-process debug build rarely does: this test
//! guards the path, the harness's WebSocket block is the reliable reproduction.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{TestGateway, control, publish, route};

/// A WebSocket echo server that accepts and answers as fast as it can.
async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_websocket_gets_its_first_frame_through() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let up = echo_upstream().await;
    let gw = TestGateway::start(&ctl.socket).await;
    publish(&ctl, vec![route("ws", up, None)]).await;
    let url = format!("ws://{}/route/ws/socket", gw.addr);
    let mut failures = Vec::new();
    for round in 0..6 {
        let attempts = (0..100).map(|i| {
            let url = url.clone();
            async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                    .await
                    .map_err(|e| format!("open: {e}"))?;
                let text = format!("first frame {round}-{i}");
                ws.send(Message::text(text.clone()))
                    .await
                    .map_err(|e| format!("send: {e}"))?;
                match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if t.as_str() == text => Ok(()),
                    other => Err(format!("no echo: {other:?}")),
                }
            }
        });
        for r in futures::future::join_all(attempts).await {
            if let Err(e) = r {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 600 WebSockets lost their first frame: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    ctl.stop.cancel();
}

/// A masked client frame (FIN, `opcode`) carrying `payload`.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Upgrade request and first frame in one write, before any answer: the frame must
/// reach the workspace and come back, behind the 101.
async fn early_frame_comes_back(gw: SocketAddr, host: &str, path: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let payload: Vec<u8> = (0..=255u8).rev().collect();
    let mut bytes = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes();
    bytes.extend(client_frame(0x2, &payload));
    s.write_all(&bytes).await.unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    let expected_frame_len = 4 + payload.len(); // 0x82, 126, u16 length, payload
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n")
                && got.len() >= end + 4 + expected_frame_len
            {
                return;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no echo of the early frame via {host}{path}");
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head: {:?}", String::from_utf8_lossy(&got)));
    let head = String::from_utf8_lossy(&got[..end]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let frame = &got[end + 4..];
    assert_eq!(
        &frame[..4],
        &[0x82, 126, 1, 0],
        "a binary frame of 256 bytes"
    );
    assert_eq!(
        &frame[4..4 + payload.len()],
        payload.as_slice(),
        "byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_exact_keep_early_bytes_and_negotiate_subprotocols() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let stop = tokio_util::sync::CancellationToken::new();
    let app = crate::harness::echo_app(&stop).await;
    let gw = TestGateway::start_with(
        &ctl.socket,
        crate::harness::Options {
            routing: gateway::routing::Routing {
                domain: Some("ws.test".into()),
                path: true,
            },
            ..Default::default()
        },
    )
    .await;
    publish(&ctl, vec![route("sock", app, None)]).await;
    for (host, path) in [
        ("sock.ws.test:8080", "/s"),
        ("gw.test:8080", "/route/sock/s"),
    ] {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{host}{path}"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        req.headers_mut().insert(
            "sec-websocket-protocol",
            "chat.v2, chat.v1".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let tcp = tokio::net::TcpStream::connect(gw.addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp)
            .await
            .unwrap_or_else(|e| panic!("{host}{path}: {e}"));
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("chat.v2"),
            "the workspace's choice reaches the client ({host}{path})"
        );
        // Every byte value, in a frame bigger than any buffer on the way, both ways.
        let all: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        ws.send(Message::binary(all.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no echo via {host}{path}"));
        match back {
            Some(Ok(Message::Binary(b))) => assert!(b.as_ref() == all.as_slice(), "byte for byte"),
            other => panic!("{other:?}"),
        }
        ws.send(Message::text("ünïcødé ✓"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.as_str(), "ünïcødé ✓"),
            other => panic!("{other:?}"),
        }
        early_frame_comes_back(gw.addr, host, path).await;
    }
    stop.cancel();
    ctl.stop.cancel();
}

/// WebSockets leave Pingora's request task after their 101 and are carried by the
/// gateway's own copy loop (`tunnel.rs`): the gauge counts them while they are open,
/// each closes when its client closes, and one idle past the upgraded idle timeout is
/// closed by the gateway while one that keeps talking stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_websockets_run_in_their_own_tunnel_and_close_when_either_side_does() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let up = echo_upstream().await;
    let gw = TestGateway::start_with(
        &ctl.socket,
        crate::harness::Options {
            limits: gateway::limits::Limits {
                upgraded_idle_timeout: Duration::from_secs(2),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    publish(&ctl, vec![route("held", up, None)]).await;
    let url = format!("ws://{}/route/held/socket", gw.addr);
    let mut held = Vec::new();
    for i in 0..20 {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .unwrap_or_else(|e| panic!("open {i}: {e}"));
        ws.send(Message::text(format!("hello {i}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.as_str(), format!("hello {i}")),
            other => panic!("no echo on {i}: {other:?}"),
        }
        held.push(ws);
    }
    assert_eq!(gw.metrics.tunnels_open(), 20, "every WebSocket in a tunnel");

    // Clients closing: their tunnels end.
    for mut ws in held.drain(10..) {
        ws.close(None).await.unwrap_or_else(|e| panic!("{e}"));
    }
    shared::testkit::eventually("ten tunnels closed", Duration::from_secs(10), || {
        gw.metrics.tunnels_open() == 10
    })
    .await;

    // Idle ones are closed by the gateway; one kept busy (a frame every 500 ms, well
    // inside the 2 s idle timeout) outlives them.
    let mut busy = held.pop().unwrap_or_else(|| panic!("held"));
    let keep_busy = tokio::spawn(async move {
        for n in 0..12 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if busy.send(Message::text(format!("{n}"))).await.is_err() {
                return Err(format!("send {n} failed"));
            }
            match tokio::time::timeout(Duration::from_secs(5), busy.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => {}
                other => return Err(format!("frame {n}: {other:?}")),
            }
        }
        Ok(busy)
    });
    for mut ws in held.drain(..) {
        let end = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => return other.map(|m| m.is_ok()),
                }
            }
        })
        .await;
        assert!(end.is_ok(), "an idle WebSocket was left open");
    }
    let busy = keep_busy
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("the busy WebSocket was cut: {e}"));
    drop(busy);
    shared::testkit::eventually("every tunnel closed", Duration::from_secs(10), || {
        gw.metrics.tunnels_open() == 0
    })
    .await;
    ctl.stop.cancel();
}
