//! The load harness's own unit tests (`harness/test_harness.py`: percentiles, the wrk Lua
//! script, metrics parsing, the peers' configurations, the report, refusing to start
//! without its binaries), run from the workspace's one test command.

#[test]
fn the_load_harness_unit_tests_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let out = std::process::Command::new("python3")
        .args(["-m", "unittest", "-v", "test_harness"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running python3: {e}"));
    assert!(
        out.status.success(),
        "harness unit tests failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
