//! Durations as people write them in flags and annotations: `90s`, `30m`, `1h30m`.

use std::time::Duration;

/// `90s`, `30m`, `2h`, `1h30m`, `1d`, or plain seconds; at least one second.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("an empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return positive(Duration::from_secs(secs), s);
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "{s:?} is not a duration (like 90s, 30m, 2h, 1h30m)"
                ));
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (like 90s, 30m, 2h, 1h30m)"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "{s:?}: a number without a unit at the end (s, m, h or d)"
        ));
    }
    positive(Duration::from_secs(total), s)
}

fn positive(d: Duration, s: &str) -> Result<Duration, String> {
    if d.is_zero() {
        Err(format!("{s:?}: a duration must be at least 1s"))
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        for (s, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("2h", 7200),
            ("1h30m", 5400),
            ("1d", 86_400),
            ("45", 45),
        ] {
            assert_eq!(parse(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        for bad in ["", "0", "0s", "10x", "1h30", "m", "-5s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
