//! Wiring `nocrd9` together: Kubernetes client, route watch and publisher, and the MCP
//! transports, all stopped by one cancellation token.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use rmcp::ServiceExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{ControlConfig, Mode, Transport};
use crate::context::Context;
use crate::mcp::NoCrdServer;
use crate::publish::Publisher;

/// A running control plane (HTTP transport), for `main` and tests.
pub struct Control {
    pub ctx: Context,
    pub http_addr: Option<SocketAddr>,
    pub publisher: Publisher,
    pub synced: watch::Receiver<bool>,
    /// Whether this replica holds the culler's Lease.
    pub leader: watch::Receiver<bool>,
    pub shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Control {
    /// Starts the route watch, the publisher on the gateway socket and, unless the
    /// transport is stdio only, the HTTP server.
    pub async fn start(config: &ControlConfig, client: kube::Client) -> anyhow::Result<Control> {
        let shutdown = CancellationToken::new();
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        let publisher = Publisher::new(epoch);
        let mut ctx = Context::from_config(client.clone(), config, Some(publisher.clone()));
        if let Some(path) = &config.audit_log {
            ctx.audit = Some(
                shared::audit::AuditLog::open(path)
                    .with_context(|| format!("opening the audit log {path}"))?,
            );
        }
        ctx.workspaces = Some(std::sync::Arc::new(std::sync::Mutex::new(
            crate::claims::Index::new(config.default_workspace_port),
        )));
        if let (Some(_), Transport::Stdio | Transport::Both) = (&ctx.auth, config.transport) {
            tracing::warn!(
                "auth is on: HTTP callers need a token; stdio callers act as the local operator (unrestricted)"
            );
        }
        if config.permission_checks {
            let report = crate::permissions::check(
                &client,
                crate::tools::TOOLS,
                config.mode,
                &config.namespace,
            )
            .await;
            if !report.disabled.is_empty() {
                tracing::warn!(disabled = ?report.disabled, "tools not registered: this identity lacks the Kubernetes permissions they need (see check_permissions)");
            }
            ctx.permissions = Some(std::sync::Arc::new(report));
        }
        if let Some(dir) = config.gateway_socket.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let socket = Publisher::bind(&config.gateway_socket)?;
        let mut tasks = Vec::new();
        if let Some(verifier) = ctx.auth.clone() {
            if let Err(e) = verifier.refresh_keys().await {
                tracing::warn!(error = %e, "JWKS not loaded at startup; will retry on demand and in the background");
            }
            let stop = shutdown.clone();
            tasks.push(tokio::spawn(
                verifier.run_key_refresh(async move { stop.cancelled().await }),
            ));
        }
        tasks.push(tokio::spawn({
            let (p, s) = (publisher.clone(), shutdown.clone());
            async move { p.serve(socket, s).await }
        }));
        let pods: Api<Pod> = match config.mode {
            Mode::Namespaced => Api::namespaced(client.clone(), &config.namespace),
            Mode::Cluster => Api::all(client.clone()),
        };
        tasks.push(tokio::spawn(crate::activity::annotate(
            client.clone(),
            publisher.clone(),
            config.activity_annotate_every,
            shutdown.clone(),
        )));
        // The culler acts only on the replica holding its Lease (in control's namespace).
        let (leader_tx, leader_rx) = watch::channel(false);
        let mut election = crate::lease::Election::culler(&config.namespace);
        (election.lease_duration, election.renew_every) = config.lease_timing;
        tasks.push(tokio::spawn(crate::lease::run(
            client.clone(),
            election,
            leader_tx,
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(crate::culler::run(
            ctx.clone(),
            leader_rx.clone(),
            config.cull_every,
            shutdown.clone(),
        )));
        // Pools refill on the same Lease and cadence as the culler.
        tasks.push(tokio::spawn(crate::pool::run(
            ctx.clone(),
            leader_rx.clone(),
            config.cull_every,
            shutdown.clone(),
        )));
        let (wakes_tx, wakes_rx) = tokio::sync::mpsc::unbounded_channel();
        publisher.on_wake(wakes_tx);
        tasks.push(tokio::spawn(crate::suspend::serve_wakes(
            ctx.clone(),
            wakes_rx,
            shutdown.clone(),
        )));
        let (synced_tx, synced) = watch::channel(false);
        let index = ctx.workspaces.clone().unwrap_or_default();
        tasks.push(tokio::spawn(crate::watch::run(
            crate::watch::WatchTargets {
                pods,
                claims: Api::namespaced(client.clone(), &config.namespace),
                index,
                publisher: publisher.clone(),
            },
            synced_tx,
            shutdown.clone(),
        )));
        let mut http_addr = None;
        if config.transport != Transport::Stdio {
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            http_addr = Some(listener.local_addr()?);
            if config.http.allowed_hosts.is_none() {
                tracing::info!(listen = %config.listen, "MCP accepts any Host header; --allowed-hosts restricts it");
            }
            let app =
                crate::http::router(ctx.clone(), synced.clone(), shutdown.clone(), &config.http);
            tasks.push(tokio::spawn(serve_http(
                listener,
                app,
                config.tls.clone(),
                shutdown.clone(),
            )));
        }
        Ok(Control {
            ctx,
            http_addr,
            publisher,
            synced,
            leader: leader_rx,
            shutdown,
            tasks,
        })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(audit) = &self.ctx.audit {
            audit.flush();
        }
    }
}

/// Serves `app` on `listener` (HTTPS with `tls`) until `stop`.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) {
    let served = match tls {
        None => {
            // No Nagle: a streamed (SSE) MCP answer is written as headers, then the event;
            // held back until the client's delayed ACK, every tool call took 40 ms more
            // (the load harness's Python client saw it).
            use axum::serve::ListenerExt as _;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }
        Some(config) => match crate::tls::TlsListener::new(listener, config, stop.clone()) {
            Ok(tls) => {
                axum::serve(tls, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// `nocrd9` itself: run until SIGTERM/Ctrl-C (or, with stdio, until stdin closes).
pub async fn run(config: ControlConfig) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster, KUBECONFIG or ~/.kube/config)")?;
    let control = Control::start(&config, client).await?;
    if let Some(addr) = control.http_addr {
        tracing::info!(%addr, "MCP over streamable HTTP at /mcp");
    }
    let stdio = if config.transport != Transport::Http {
        let service = NoCrdServer::new(control.ctx.clone(), crate::caller::Transport::Stdio)
            .serve(rmcp::transport::stdio())
            .await
            .context("starting the stdio transport")?;
        Some(service)
    } else {
        None
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    match stdio {
        Some(service) => {
            tokio::select! {
                _ = service.waiting() => {}
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    }
    control.stop().await;
    Ok(())
}
