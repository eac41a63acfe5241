//! The no-crd load-test crate: `kube-sim`, the simulated Kubernetes cluster every test,
//! `nocrd9 dev` and the load harness run against.

pub mod sim;
