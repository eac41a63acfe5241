//! `nocrd9-gateway`: placeholder until the gateway issue lands. It prints its usage and
//! exits; it proxies nothing yet.

const USAGE: &str =
    "nocrd9-gateway: the no-crd data plane (Pingora reverse proxy for /route/<id>/...)

Not built yet: this binary is a placeholder until the gateway issue lands.

Usage: nocrd9-gateway [--help]
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--help" | "-h") => print!("{USAGE}"),
        Some(other) => {
            eprintln!("nocrd9-gateway: unknown argument {other:?} (placeholder binary)\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}
