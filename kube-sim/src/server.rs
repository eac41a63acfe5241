//! The accept loop. One port speaks both TLS (h2 + HTTP/1.1 by ALPN) and plain HTTP,
//! told apart by the first byte a client sends (a TLS handshake starts with 0x16):
//! kubectl sends credentials only over TLS, while tests are cheaper over plain HTTP.

use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::api::{self, ApiState};

/// With `tls_only`, plain-HTTP connections are closed without an answer.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    tls_only: bool,
    state: Arc<ApiState>,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(api::handle(state, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let mut first = [0u8; 1];
            let is_tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                stream.peek(&mut first),
            )
            .await
            {
                Ok(Ok(1)) => first[0] == 0x16,
                _ => return,
            };
            if tls_only && !is_tls {
                tracing::debug!(%peer, "plain HTTP refused (--tls)");
                return;
            }
            let result = match is_tls {
                true => match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                        tokio::select! { r = conn => r, _ = shutdown.cancelled() => Ok(()) }
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                false => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    tokio::select! { r = conn => r, _ = shutdown.cancelled() => Ok(()) }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
