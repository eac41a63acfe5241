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

use crate::config::{Args, Mode, Transport};
use crate::context::Context;
use crate::mcp::NoCrdServer;
use crate::publish::Publisher;

/// A running control plane (HTTP transport), for `main` and tests.
pub struct Control {
    pub ctx: Context,
    pub http_addr: Option<SocketAddr>,
    pub publisher: Publisher,
    pub synced: watch::Receiver<bool>,
    pub shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Control {
    /// Starts the route watch, the publisher on `--gateway-socket` and, unless the
    /// transport is stdio only, the HTTP server.
    pub async fn start(args: &Args, client: kube::Client) -> anyhow::Result<Control> {
        let shutdown = CancellationToken::new();
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        let publisher = Publisher::new(epoch);
        let mut ctx = Context::new(
            client.clone(),
            args.namespace.clone(),
            args.mode,
            Some(publisher.clone()),
            args.gateway_url.clone(),
        );
        ctx.pod_security = args.pod_security;
        ctx.registry_url = args.registry_url.clone();
        ctx.read_only = args.read_only;
        ctx.ui_enabled = args.ui_enabled;
        ctx.auth = args
            .auth
            .build()
            .map_err(|problems| anyhow::anyhow!(problems.join("; ")))?;
        if let (Some(_), Transport::Stdio | Transport::Both) = (&ctx.auth, args.transport) {
            tracing::warn!(
                "auth is on: HTTP callers need a token; stdio callers act as the local operator (unrestricted)"
            );
        }
        if !args.disable_permission_checks {
            let report = crate::permissions::check(
                &client,
                crate::mcp::ALL_TOOLS,
                args.mode,
                &args.namespace,
            )
            .await;
            if !report.disabled.is_empty() {
                tracing::warn!(disabled = ?report.disabled, "tools not registered: this identity lacks the Kubernetes permissions they need (see check_permissions)");
            }
            ctx.permissions = Some(std::sync::Arc::new(report));
        }
        if let Some(dir) = args.gateway_socket.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let socket = Publisher::bind(&args.gateway_socket)?;
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
        let pods: Api<Pod> = match args.mode {
            Mode::Namespaced => Api::namespaced(client.clone(), &args.namespace),
            Mode::Cluster => Api::all(client.clone()),
        };
        tasks.push(tokio::spawn(crate::activity::annotate(
            client.clone(),
            publisher.clone(),
            std::time::Duration::from_secs(args.activity_annotate_seconds),
            shutdown.clone(),
        )));
        let (synced_tx, synced) = watch::channel(false);
        tasks.push(tokio::spawn(crate::watch::run(
            pods,
            args.default_workspace_port,
            publisher.clone(),
            synced_tx,
            shutdown.clone(),
        )));
        let mut http_addr = None;
        if args.transport != Transport::Stdio {
            let listener = tokio::net::TcpListener::bind((args.host, args.port))
                .await
                .with_context(|| format!("binding {}:{}", args.host, args.port))?;
            http_addr = Some(listener.local_addr()?);
            let opts = http_options(args)?;
            let app = crate::http::router(ctx.clone(), synced.clone(), shutdown.clone(), &opts);
            let stop = shutdown.clone();
            let tls = match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => {
                    Some(crate::tls::server_config(cert, key).map_err(anyhow::Error::msg)?)
                }
                _ => None,
            };
            tasks.push(tokio::spawn(async move {
                let served = match tls {
                    None => {
                        // No Nagle: a streamed (SSE) MCP answer is written as headers, then
                        // the event; held back until the client's delayed ACK, every tool
                        // call took 40 ms more (the load harness's Python client saw it).
                        use axum::serve::ListenerExt as _;
                        let listener = listener.tap_io(|tcp| {
                            let _ = tcp.set_nodelay(true);
                        });
                        axum::serve(listener, app)
                            .with_graceful_shutdown(async move { stop.cancelled().await })
                            .await
                    }
                    Some(config) => {
                        match crate::tls::TlsListener::new(listener, config, stop.clone()) {
                            Ok(tls) => {
                                axum::serve(tls, app)
                                    .with_graceful_shutdown(async move { stop.cancelled().await })
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    }
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            }));
        }
        Ok(Control {
            ctx,
            http_addr,
            publisher,
            synced,
            shutdown,
            tasks,
        })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The HTTP server's options from the flags (already validated by `config::validate`).
fn http_options(args: &Args) -> anyhow::Result<crate::http::HttpOptions> {
    let base_url = match &args.base_url {
        Some(b) => crate::http::normalize_base_url(b).map_err(anyhow::Error::msg)?,
        None => String::new(),
    };
    let cors = crate::http::Cors::parse(&args.cors_origin, &args.cors_methods, &args.cors_headers)
        .map_err(anyhow::Error::msg)?;
    let hosts: Vec<String> = args
        .allowed_hosts
        .iter()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    let allowed_hosts = if hosts.iter().any(|h| h == "*") {
        None
    } else if !hosts.is_empty() {
        Some(hosts)
    } else if args.host.is_loopback() {
        crate::http::HttpOptions::default().allowed_hosts
    } else {
        tracing::info!(host = %args.host, "MCP accepts any Host header (bound beyond loopback); --allowed-hosts restricts it");
        None
    };
    Ok(crate::http::HttpOptions {
        base_url,
        cors,
        allowed_hosts,
        ui_enabled: args.ui_enabled,
    })
}

/// `nocrd9` itself: run until SIGTERM/Ctrl-C (or, with stdio, until stdin closes).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster, KUBECONFIG or ~/.kube/config)")?;
    let control = Control::start(&args, client).await?;
    if let Some(addr) = control.http_addr {
        tracing::info!(%addr, "MCP over streamable HTTP at /mcp");
    }
    let stdio = if args.transport != Transport::Http {
        let service = NoCrdServer::new(control.ctx.clone())
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
