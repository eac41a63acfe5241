//! Helpers every crate's tests share (feature `testkit`, and this crate's own tests): a
//! route builder and waiting on a condition with a deadline — never on a bare sleep.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crate::ids::WorkspaceId;
use crate::route::{Route, RouteState};

/// A Ready route for workspace `id` of pod `uid` at `addr`, owned by `owner`.
pub fn route(id: &str, uid: &str, addr: SocketAddr, owner: Option<&str>) -> Route {
    Route {
        workspace_id: WorkspaceId::parse(id).expect("a valid workspace id"),
        pod_uid: uid.into(),
        namespace: "default".into(),
        state: RouteState::Ready,
        addr: Some(addr),
        owner_sub: owner.map(str::to_string),
        port_is_default: false,
        web: Default::default(),
    }
}

/// Reads one HTTP/1.x response that carries a `Content-Length` from a kept-alive
/// connection: (head, body). Panics if the peer closes first, if the head has no
/// `Content-Length`, or if no whole response arrives within 10 s.
pub async fn read_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or_else(|| panic!("no Content-Length in {head}"));
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                return (head, body);
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no whole response in 10 s: {:?}",
                    String::from_utf8_lossy(&buf)
                )
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            n > 0,
            "the connection closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Polls `check` every 10 ms until it holds; panics naming `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    eventually_async(what, limit, || std::future::ready(check())).await
}

/// [`eventually`] for a condition that must be awaited (an HTTP call, a Kubernetes read).
pub async fn eventually_async<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A loopback port for a server a test cannot bind on port 0 itself (Pingora cannot
/// report a port-0 bind; a child process cannot hand its port back), free when this
/// returns and never handed to another caller while this process lives.
///
/// Binding port 0 and releasing it races: the kernel may hand the same port to the next
/// bind in this or another test process (a gateway once got one port for both `--listen`
/// and `--admin-listen`, and its admin listener answered the test's requests). So ports
/// come from below the kernel's ephemeral range, where neither port-0 binds nor outgoing
/// connections land, and each is claimed by an exclusive lock on a file every test
/// process shares, held until this process exits.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());

    let dir = std::env::temp_dir().join("nocrd9-test-ports");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let (first, last) = claimable_ports();
    let span = u32::from(last - first) + 1;
    // Start where this process's id points, so parallel test processes rarely contend.
    let start = std::process::id() % span;
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    for step in 0..span {
        let port = first + ((start + step) % span) as u16;
        let Ok(lock) = std::fs::File::create(dir.join(port.to_string())) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        // Claimed from other test processes; also free of everything else right now.
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            held.push(lock);
            return port;
        }
    }
    panic!("no claimable loopback port in {first}..={last}");
}

/// The ports [`free_port`] hands out: 20000 up to the start of the kernel's ephemeral
/// range (or the range above it, when it starts too low to leave room below).
fn claimable_ports() -> (u16, u16) {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32768, 60999));
    match ephemeral {
        (low, _) if low > 21000 => (20000, low - 1),
        (_, high) if high < 64000 => (high + 1, 65535),
        _ => (20000, 20999),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let (first, last) = claimable_ports();
        let ports: Vec<u16> = (0..64).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(
            distinct.len(),
            ports.len(),
            "a port was handed out twice: {ports:?}"
        );
        for p in ports {
            assert!((first..=last).contains(&p), "{p} outside {first}..={last}");
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
        // What port 0 gets is never among them.
        let ephemeral = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!(first..=last).contains(&ephemeral));
    }

    #[tokio::test]
    async fn a_response_is_read_up_to_its_content_length() {
        let mut wire: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 next";
        let (head, body) = read_response(&mut wire).await;
        assert_eq!(head, "HTTP/1.1 200 OK\r\ncontent-length: 2");
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    #[should_panic(expected = "closed mid-response")]
    async fn a_response_cut_short_is_a_failure() {
        let mut wire: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok";
        read_response(&mut wire).await;
    }
}
