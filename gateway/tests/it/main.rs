//! Gateway integration tests: the real Pingora server in-process on loopback, fed by the
//! real publisher over a Unix socket, in front of the simulated cluster's workspace apps.

mod activity;
mod auth;
mod churn;
mod e2e;
mod harness;
mod lifecycle;
mod limits;
mod mcp;
mod origins;
mod pool;
mod proxy;
mod streams;
mod suspend;
mod sync;
mod tls;
mod websockets;
