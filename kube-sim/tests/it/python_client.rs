//! Conformance through the official Kubernetes Python client (`kubernetes` on PyPI,
//! pinned and installed by `.ci/run`), a client nobody here wrote.

use std::process::Command;

use crate::cli::start_sim;

#[test]
fn the_python_client_passes_the_conformance_script() {
    let sim = start_sim(&["--deny", "delete:pods@py-locked", "--history", "40"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/python_client.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(&sim.kubeconfig)
        .output()
        .expect("python3 must be installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'kubernetes'"),
        "the Python client is missing: ./run-tests installs it (pip install -r kube-sim/tests/conformance/requirements.txt)"
    );
    assert!(out.status.success(), "python conformance failed:\n{stderr}");
    assert!(
        stderr.contains("Ran 7 tests") && stderr.contains("OK"),
        "{stderr}"
    );
}
