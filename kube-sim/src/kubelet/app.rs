//! The built-in workspace app: what stands in for any container image that cannot run
//! here. An HTTP/1.1 + h2c server on `podIP:port` that answers every request with JSON
//! describing the request, and echoes WebSocket frames (text and binary, byte for
//! byte), choosing the first subprotocol the client offers.
//!
//! Query parameters make it behave like the apps people put behind a gateway:
//! `redirect=<location>` answers `302` with that `Location`; every `set-cookie=<value>`
//! adds that `Set-Cookie`; `status=<code>` answers with that status.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

/// Who the app answers as.
#[derive(Debug, Clone)]
pub struct AppIdentity {
    pub pod: String,
    pub namespace: String,
}

/// Serves `listener` until `cancel` fires; open connections are dropped then, as when a
/// real container is killed.
pub async fn serve(listener: TcpListener, id: Arc<AppIdentity>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, pod = %id.pod, "built-in app accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = id.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, id.clone()));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, needle: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(needle)))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

async fn handle(
    req: Request<Incoming>,
    id: Arc<AppIdentity>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if is_websocket_upgrade(&req) {
        return Ok(upgrade_websocket(req));
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let asked = Behaviour::from_query(&query);
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let entry = headers
            .entry(name.as_str().to_string())
            .or_insert_with(|| json!(""));
        // Repeated headers are joined as a proxy would fold them.
        *entry = match entry.as_str() {
            Some("") | None => json!(value),
            Some(prev) => json!(format!("{prev}, {value}")),
        };
    }
    // Count the body as it streams, so large uploads are never held in memory.
    let mut body = req.into_body();
    let mut body_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => body_bytes += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => break,
        }
    }
    let payload = json!({
        "pod": id.pod,
        "namespace": id.namespace,
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "bodyBytes": body_bytes,
    });
    let body = serde_json::to_vec(&payload).unwrap_or_default();
    let mut resp = Response::builder()
        .status(asked.status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(location) = &asked.redirect {
        resp = resp.header(header::LOCATION, location);
    }
    for cookie in &asked.cookies {
        resp = resp.header(header::SET_COOKIE, cookie);
    }
    Ok(resp
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| bad_request("the redirect or set-cookie value is not a valid header")))
}

/// What the query asks the app to answer with.
struct Behaviour {
    status: StatusCode,
    redirect: Option<String>,
    cookies: Vec<String>,
}

impl Behaviour {
    fn from_query(query: &str) -> Behaviour {
        let mut b = Behaviour {
            status: StatusCode::OK,
            redirect: None,
            cookies: Vec::new(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = crate::api::decode_component(v);
            match k {
                "redirect" => {
                    b.redirect = Some(v);
                    b.status = StatusCode::FOUND;
                }
                "set-cookie" => b.cookies.push(v),
                "status" => {
                    if let Some(s) = v.parse().ok().and_then(|c| StatusCode::from_u16(c).ok()) {
                        b.status = s;
                    }
                }
                _ => {}
            }
        }
        b
    }
}

fn bad_request(message: &str) -> Response<Full<Bytes>> {
    let body = json!({"error": message}).to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp
}

fn upgrade_websocket(mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Full::new(Bytes::from_static(
                b"{\"error\":\"missing Sec-WebSocket-Key\"}",
            )))
            .unwrap_or_default();
    };
    let accept = derive_accept_key(key.as_bytes());
    // The first subprotocol offered, as a server that supports it would choose.
    let protocol = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| !p.is_empty())
        .map(str::to_string);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                if ws.send(msg).await.is_err() {
                    break;
                }
            } else if msg.is_close() {
                let _ = ws.close(None).await;
                break;
            }
        }
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(p) = protocol {
        resp = resp.header(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    resp.body(Full::new(Bytes::new())).unwrap_or_default()
}
