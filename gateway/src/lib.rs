//! The no-crd data plane (`nocrd9-gateway`). Today: the route store the proxy reads on
//! every request ([`store`]) and the feed that keeps it equal to control's table
//! ([`sync`]); the Pingora proxy lands with the gateway issue.

pub mod store;
pub mod sync;
