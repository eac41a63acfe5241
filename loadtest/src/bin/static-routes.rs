//! `static-routes`: a stand-in control plane for load tests. It serves a fixed route
//! table of N workspaces on a control socket (the real protocol: `shared::feed::Log`
//! decides what a connecting gateway is sent; pings keep it alive; acks and activity are
//! read and dropped), so a gateway can be measured against upstreams that are not
//! Kubernetes pods.
//!
//! Workspace `ws-00001 … ws-N` → `127.1.⌊(i−1)/250⌋.((i−1)%250+1):PORT`, owner `--owner`
//! (the layout of `../shared/reference/perf-anchors.md`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use std::sync::Arc;

use shared::codec::{read_frame, write_frame};
use shared::feed::Log;
use shared::ids::WorkspaceId;
use shared::proto::{ToControl, ToGateway};
use shared::route::{Route, RouteState};

#[derive(Parser)]
#[command(about = "Serve a fixed route table to nocrd9-gateway over its control socket")]
struct Args {
    /// The socket to listen on (the gateway's --control-socket).
    #[arg(long)]
    socket: PathBuf,
    /// Number of workspaces.
    #[arg(long, default_value_t = 1000)]
    routes: u32,
    /// Port every upstream listens on.
    #[arg(long, default_value_t = 18080)]
    port: u16,
    /// Owner (`sub`) of every workspace; empty for none.
    #[arg(long, default_value = "user-1")]
    owner: String,
}

pub fn address(i: u32, port: u16) -> SocketAddr {
    let i = i - 1;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)),
        port,
    )
}

fn routes(args: &Args) -> Vec<Route> {
    (1..=args.routes)
        .filter_map(|i| {
            Some(Route {
                workspace_id: WorkspaceId::parse(&format!("ws-{i:05}")).ok()?,
                pod_uid: format!("uid-{i}"),
                namespace: "default".into(),
                state: RouteState::Ready,
                addr: Some(address(i, args.port)),
                owner_sub: (!args.owner.is_empty()).then(|| args.owner.clone()),
                port_is_default: false,
                web: Default::default(),
            })
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if args.routes == 0 || args.routes > 62_500 {
        eprintln!("static-routes: --routes must be between 1 and 62500 (the 127.1.0.0/16 layout)");
        return std::process::ExitCode::from(2);
    }
    let _ = std::fs::remove_file(&args.socket);
    let listener = match tokio::net::UnixListener::bind(&args.socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "static-routes: cannot listen on {}: {e}",
                args.socket.display()
            );
            return std::process::ExitCode::from(2);
        }
    };
    let mut log = Log::new(1, 1);
    log.replace_all(routes(&args));
    eprintln!(
        "static-routes: {} routes on {}",
        log.table().len(),
        args.socket.display()
    );
    let log = Arc::new(log);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let log = log.clone();
        tokio::spawn(async move {
            let (mut rd, mut wr) = stream.into_split();
            let Ok(Some(ToControl::Hello { have, .. })) = read_frame::<_, ToControl>(&mut rd).await
            else {
                return;
            };
            for frame in log.catch_up(have) {
                if write_frame(&mut wr, &frame).await.is_err() {
                    return;
                }
            }
            // Keep the gateway's silence detector happy; drain what it sends.
            let drain = tokio::spawn(async move {
                while let Ok(Some(msg)) = read_frame::<_, ToControl>(&mut rd).await {
                    let _ = msg;
                }
            });
            let mut nonce = 0;
            while !drain.is_finished() {
                nonce += 1;
                if write_frame(&mut wr, &ToGateway::Ping { nonce })
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        });
    }
}
