//! The library example runs as documented (its `run` is the example program itself).

#[path = "../../examples/library.rs"]
mod example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_example_spawns_lists_and_stops() {
    let listed = example::run().await.unwrap_or_else(|e| panic!("{e:#}"));
    let rows = listed["workspaces"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["id"], "lib-demo");
    assert_eq!(rows[0]["status"], "Running");
    assert_eq!(rows[0]["template"], "python-sandbox");
}
