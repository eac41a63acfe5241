//! The no-crd control plane (`nocrd9`). Today: the route source (workspace pods → routes,
//! [`routes`], [`watch`]) and the route publisher to gateways ([`publish`]); the MCP
//! server, spawner and `nocrd9 dev` land with the control-plane issue.

pub mod publish;
pub mod routes;
pub mod watch;
