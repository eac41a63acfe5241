//! The no-crd control plane (`nocrd9`): the MCP server for pods, templates and
//! workspaces, the route source (workspace pods → routes) and the route publisher to
//! gateways.
//!
//! # As a library
//!
//! Everything the MCP tools do is a plain async function over a [`context::Context`]
//! built from a `kube::Client`, returning an [`outcome::Outcome`] (the text and the
//! structured JSON a tool would return) or an [`outcome::ToolError`]:
//!
//! - workspaces: [`workspaces::spawn`] (idempotent per id; with `wait`, returns when the
//!   pod is Ready, or when every gateway has the route if a publisher is attached),
//!   [`workspaces::stop`], [`workspaces::list`];
//! - templates: [`workspaces::list_templates`], [`workspaces::get_template`],
//!   [`template_writes::create`] / [`update`](template_writes::update) /
//!   [`delete`](template_writes::delete);
//! - who acts: a [`caller::Caller`] (`Operator` for trusted code, `User` to act for a
//!   verified identity and see only its workspaces).
//!
//! `control/examples/library.rs` is a complete program (run in CI by
//! `tests/library.rs`): it starts the simulated cluster, creates a template, spawns,
//! lists and stops a workspace.

//!
//! Layers, each importing only from the ones below it (checked by `tests/layers.py`):
//! `main`/`dev` → `run` → `http`, `mcp` (tool registration and argument shapes) → the
//! domain (`workspaces`, `pods`, `pod_writes`, `from_template`, `template_writes`,
//! `registry`) → its pure rules (`spawner`, `templates`, `pod_security`, `routes`) and
//! state (`context`, `caller`, `publish`, `watch`, `activity`) → leaves (`config`,
//! `tools`, `outcome`).

pub mod activity;
pub mod caller;
pub mod claims;
pub mod config;
pub mod context;
pub mod culler;
#[cfg(feature = "dev")]
pub mod dev;
pub mod events;
pub mod from_template;
pub mod http;
pub mod lease;
pub mod lifecycle;
pub mod mcp;
pub mod metrics;
pub mod outcome;
pub mod permissions;
pub mod pod_security;
pub mod pod_writes;
pub mod pods;
pub mod policy;
pub mod pool;
pub mod progress;
pub mod publish;
pub mod quota;
pub mod registry;
pub mod routes;
pub mod run;
pub mod sessions;
pub mod spawn_wait;
pub mod spawner;
pub mod standing;
pub mod suspend;
pub mod template_reads;
pub mod template_writes;
pub mod templates;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tls;
pub mod tools;
pub mod ui;
pub mod valid;
pub mod watch;
pub mod workspaces;
