//! The no-crd control plane (`nocrd9`): an MCP server for pods (workspaces and templates
//! land with the rest of the control-plane issue), the route source (workspace pods →
//! routes) and the route publisher to gateways.

pub mod activity;
pub mod caller;
pub mod config;
pub mod context;
pub mod dev;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod permissions;
pub mod pod_security;
pub mod progress;
pub mod publish;
pub mod routes;
pub mod run;
pub mod spawner;
pub mod templates;
pub mod tls;
pub mod watch;
pub mod workspaces;
