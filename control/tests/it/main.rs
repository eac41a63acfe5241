//! control's integration tests, one binary (one link of kube-sim, control and rmcp):
//! each module starts what it needs through `harness` (which uses `control::testkit`).

mod auth;
mod browser;
mod deploy;
mod dev;
mod harness;
mod hostile;
mod http;
mod interop;
mod library;
mod mcp;
mod origins;
mod route_feed;
mod surface;
mod ui;
mod workspaces;
