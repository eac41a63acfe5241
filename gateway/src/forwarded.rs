//! The headers a workspace learns about its caller from the gateway. Pure: the client's
//! own copies of these headers are dropped, then the gateway sets them, so a workspace
//! can trust `X-Forwarded-User` and friends.

use std::net::IpAddr;

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// Headers only the gateway may set.
pub const RESERVED: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-forwarded-user",
    "forwarded",
];

/// What the gateway knows about the request it forwards.
#[derive(Debug, Clone, Default)]
pub struct Forwarded<'a> {
    pub client_ip: Option<IpAddr>,
    pub tls: bool,
    /// The `Host` the client sent.
    pub host: Option<&'a HeaderValue>,
    /// The path prefix the workspace is served under (`/route/<id>`), made for this
    /// request: it becomes the header value without another copy.
    pub prefix: Option<String>,
    /// The verified caller.
    pub user: Option<&'a str>,
}

/// Whether a header name is one of ours once normalised the way many servers do
/// (case folded, `_` read as `-`: CGI, WSGI, Rack and nginx with
/// `underscores_in_headers` all turn `X_Forwarded_User` into `X-Forwarded-User`).
fn is_reserved(name: &str) -> bool {
    // Compared byte by byte (names are lower-case already): no allocation per header.
    let folded = |a: u8, b: u8| a == b || (a == b'_' && b == b'-');
    RESERVED.iter().any(|r| {
        r.len() == name.len()
            && name
                .bytes()
                .zip(r.bytes())
                .all(|(a, b)| folded(a.to_ascii_lowercase(), b))
    })
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Replaces every reserved header of `up` (and any spelling of one) with what `f` says.
/// Runs on every proxied request: the names are made once (inserting by `&str` parses
/// and copies each name again), and only the caller-specific values are allocated.
pub fn rewrite(up: &mut RequestHeader, f: Forwarded<'_>) -> pingora::Result<()> {
    if up.headers.keys().any(|k| is_reserved(k.as_str())) {
        let spellings: Vec<HeaderName> = up
            .headers
            .keys()
            .filter(|k| is_reserved(k.as_str()))
            .cloned()
            .collect();
        for h in spellings {
            up.remove_header(&h);
        }
    }
    if let Some(ip) = f.client_ip {
        up.insert_header_name(&X_FORWARDED_FOR, "x-forwarded-for", ip_value(ip));
    }
    let proto = HeaderValue::from_static(if f.tls { "https" } else { "http" });
    up.insert_header_name(&X_FORWARDED_PROTO, "x-forwarded-proto", proto);
    if let Some(user) = f.user {
        up.insert_header_name(&X_FORWARDED_USER, "x-forwarded-user", value(user)?);
    }
    if let Some(host) = f.host {
        up.insert_header_name(&X_FORWARDED_HOST, "x-forwarded-host", host.clone());
    }
    if let Some(prefix) = f.prefix {
        let prefix = HeaderValue::from_maybe_shared(bytes::Bytes::from(prefix)).map_err(|e| {
            pingora::Error::because(
                pingora::ErrorType::InvalidHTTPHeader,
                "a forwarded header",
                e,
            )
        })?;
        up.insert_header_name(&X_FORWARDED_PREFIX, "x-forwarded-prefix", prefix);
    }
    Ok(())
}

fn value(text: &str) -> pingora::Result<HeaderValue> {
    HeaderValue::from_str(text).map_err(|e| {
        pingora::Error::because(
            pingora::ErrorType::InvalidHTTPHeader,
            "a forwarded header",
            e,
        )
    })
}

/// An address as a header value: one allocation (the value), no formatter for IPv4.
fn ip_value(ip: IpAddr) -> HeaderValue {
    let mut buf = [0u8; 48];
    let len =
        match ip {
            IpAddr::V4(v4) => {
                let mut len = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[len] = b'.';
                        len += 1;
                    }
                    for digit in [octet / 100, octet / 10 % 10, octet % 10].into_iter().skip(
                        if octet >= 100 {
                            0
                        } else if octet >= 10 {
                            1
                        } else {
                            2
                        },
                    ) {
                        buf[len] = b'0' + digit;
                        len += 1;
                    }
                }
                len
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut buf[..]);
                // The longest IPv6 text is 45 bytes: the write cannot fail.
                let _ = write!(cursor, "{v6}");
                cursor.position() as usize
            }
        };
    HeaderValue::from_bytes(&buf[..len]).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a RequestHeader, name: &str) -> Vec<&'a str> {
        r.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    #[test]
    fn addresses_are_written_as_text() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "2001:db8::8a2e:370:7334",
        ] {
            let parsed: IpAddr = ip.parse().expect("address");
            assert_eq!(
                ip_value(parsed).to_str().ok(),
                Some(parsed.to_string().as_str())
            );
        }
    }

    #[test]
    fn client_copies_are_replaced_by_the_gateways() {
        let mut up = RequestHeader::build("GET", b"/x", None).expect("request");
        for (k, v) in [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-user", "admin"),
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-prefix", "/evil"),
            ("x_forwarded_user", "admin"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("x-other", "kept"),
            ("x_other", "kept too"),
        ] {
            up.append_header(k, v).expect("header");
        }
        let host = HeaderValue::from_static("gw.test:8080");
        rewrite(
            &mut up,
            Forwarded {
                client_ip: Some([10, 0, 0, 7].into()),
                tls: true,
                host: Some(&host),
                prefix: Some("/route/ws".into()),
                user: Some("alice"),
            },
        )
        .expect("rewrite");
        assert_eq!(header(&up, "x-forwarded-for"), ["10.0.0.7"]);
        assert_eq!(header(&up, "x-forwarded-user"), ["alice"]);
        assert_eq!(header(&up, "x-forwarded-proto"), ["https"]);
        assert_eq!(header(&up, "x-forwarded-host"), ["gw.test:8080"]);
        assert_eq!(header(&up, "x-forwarded-prefix"), ["/route/ws"]);
        assert!(header(&up, "forwarded").is_empty());
        assert!(
            header(&up, "x_forwarded_user").is_empty(),
            "underscore spellings go too"
        );
        assert!(header(&up, "x_forwarded_for").is_empty());
        assert_eq!(header(&up, "x-other"), ["kept"]);
        assert_eq!(header(&up, "x_other"), ["kept too"]);

        let mut anonymous = RequestHeader::build("GET", b"/x", None).expect("request");
        anonymous
            .append_header("x-forwarded-user", "admin")
            .expect("header");
        rewrite(&mut anonymous, Forwarded::default()).expect("rewrite");
        assert!(
            header(&anonymous, "x-forwarded-user").is_empty(),
            "no verified user, no user header"
        );
    }
}
