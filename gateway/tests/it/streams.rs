//! Bodies are streamed both ways: server-sent events reach the client as the workspace
//! writes them (not when it finishes), and a large upload flows through without the
//! gateway holding it (the upstream counts the bytes as they arrive).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::harness::{TestGateway, control, publish, route, serve};

/// `/events`: one event, then waits for `release` before the second and the end.
/// `/upload`: answers with the number of body bytes it read.
async fn upstream(release: Arc<Notify>) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/events",
            axum::routing::get(move || {
                let release = release.clone();
                async move {
                    let events = futures::stream::unfold(0u8, move |step| {
                        let release = release.clone();
                        async move {
                            match step {
                                0 => {
                                    Some((Ok::<_, std::io::Error>("data: one\n\n".to_string()), 1))
                                }
                                1 => {
                                    release.notified().await;
                                    Some((Ok("data: two\n\n".to_string()), 2))
                                }
                                _ => None,
                            }
                        }
                    });
                    (
                        [("content-type", "text/event-stream")],
                        Body::from_stream(events),
                    )
                }
            }),
        )
        .route(
            "/upload",
            axum::routing::post(|body: Body| async move {
                let mut stream = body.into_data_stream();
                let mut total: u64 = 0;
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(c) => total += c.len() as u64,
                        Err(e) => return format!("error: {e}"),
                    }
                }
                total.to_string()
            }),
        );
    serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_unbuffered_and_uploads_stream_through() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let release = Arc::new(Notify::new());
    let up = upstream(release.clone()).await;
    let gw = TestGateway::start(&ctl.socket).await;
    publish(&ctl, vec![route("stream", up, None)]).await;

    // SSE: the first event arrives while the upstream is still holding the second.
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(
        b"GET /route/stream/events HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            assert!(n > 0, "closed before the first event");
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("data: one") {
                return;
            }
        }
    })
    .await;
    assert!(
        first.is_ok(),
        "the first event was held back: {}",
        String::from_utf8_lossy(&seen)
    );
    assert!(!String::from_utf8_lossy(&seen).contains("data: two"));
    release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("data: two") {
            let n = s.read(&mut buf).await.unwrap_or(0);
            assert!(n > 0, "closed before the second event");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(rest.is_ok());

    // Upload: 64 MiB with a content-length, then 8 MiB chunked.
    for chunked in [false, true] {
        let total: usize = if chunked { 8 << 20 } else { 64 << 20 };
        let mut s = tokio::net::TcpStream::connect(gw.addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let head = if chunked {
            "POST /route/stream/upload HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_string()
        } else {
            format!(
                "POST /route/stream/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
            )
        };
        s.write_all(head.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let block = vec![b'x'; 1 << 20];
        for _ in 0..(total >> 20) {
            if chunked {
                s.write_all(format!("{:x}\r\n", block.len()).as_bytes())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                s.write_all(&block).await.unwrap_or_else(|e| panic!("{e}"));
                s.write_all(b"\r\n").await.unwrap_or_else(|e| panic!("{e}"));
            } else {
                s.write_all(&block).await.unwrap_or_else(|e| panic!("{e}"));
            }
        }
        if chunked {
            s.write_all(b"0\r\n\r\n")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_string(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("upload answer"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with(&total.to_string()),
            "chunked={chunked}: {answer}"
        );
    }
    ctl.stop.cancel();
}
