//! The no-crd control plane (`nocrd9`): the MCP server for pods, templates and
//! workspaces, the route source (workspace pods → routes) and the route publisher to
//! gateways.
//!
//! # As a library
//!
//! Everything the MCP tools do is a plain async function over a [`context::Context`]
//! built from a `kube::Client`, returning an [`mcp::outcome::Outcome`] (the text and
//! the structured JSON a tool would return) or an [`mcp::outcome::ToolError`]:
//!
//! - workspaces: [`workspaces::spawn`] (idempotent per id; with `wait`, returns when the
//!   pod is Ready, or when every gateway has the route if a publisher is attached),
//!   [`workspaces::stop`], [`workspaces::list`];
//! - templates: [`workspaces::list_templates`], [`workspaces::get_template`],
//!   [`mcp::template_writes::create`] / [`update`](mcp::template_writes::update) /
//!   [`delete`](mcp::template_writes::delete);
//! - who acts: a [`caller::Caller`] (`Operator` for trusted code, `User` to act for a
//!   verified identity and see only its workspaces).
//!
//! `control/examples/library.rs` is a complete program (run in CI by
//! `tests/library.rs`): it starts the simulated cluster, creates a template, spawns,
//! lists and stops a workspace.

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
pub mod ui;
pub mod watch;
pub mod workspaces;
