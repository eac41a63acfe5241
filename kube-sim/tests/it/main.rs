//! Integration tests of kube-sim: real HTTP on loopback, driven by kube-rs, by kubectl
//! and by the official Python client (clients nobody here wrote).

mod harness;

mod api_errors;
mod cli;
mod kubectl;
mod kubelet;
mod lists_and_watches;
mod objects;
mod python_client;
