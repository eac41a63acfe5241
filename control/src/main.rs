//! `nocrd9`: placeholder until the control-plane issue lands. It prints its usage and
//! exits; it serves nothing yet.

const USAGE: &str = "nocrd9: the no-crd control plane (MCP server, spawner, route publisher)

Not built yet: this binary is a placeholder until the control-plane issue lands.
Meanwhile the simulated cluster runs on its own: `cargo run --bin kube-sim -- --help`.

Usage: nocrd9 [--help]
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--help" | "-h") => print!("{USAGE}"),
        Some(other) => {
            eprintln!("nocrd9: unknown argument {other:?} (placeholder binary)\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}
