//! Pod IP allocation from a loopback CIDR: one address per live pod, never shared.

use std::collections::{HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A CIDR inside 127.0.0.0/8 (pods bind their apps there, so nothing else is allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCidr {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for PodCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("pod CIDR {s:?} must look like 127.10.0.0/16"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|e| format!("pod CIDR {s:?}: {e}"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("pod CIDR {s:?}: bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!(
                "pod CIDR {s:?}: prefix length must be between 8 and 30"
            ));
        }
        if ip.octets()[0] != 127 {
            return Err(format!(
                "pod CIDR {s:?} must be inside 127.0.0.0/8 (loopback): pod apps listen on pod IPs"
            ));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(PodCidr {
            base: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// Hands out addresses round-robin (so a freed address is not reused soon after), or,
/// with `reuse`, hands a freed address out again first (for IP-reuse tests).
#[derive(Debug)]
pub struct Ipam {
    base: u32,
    size: u32,
    cursor: u32,
    in_use: HashSet<u32>,
    freed: VecDeque<u32>,
    reuse: bool,
}

impl Ipam {
    pub fn new(cidr: PodCidr, reuse: bool) -> Self {
        Ipam {
            base: u32::from(cidr.base),
            size: 1u32 << (32 - cidr.prefix),
            cursor: 1,
            in_use: HashSet::new(),
            freed: VecDeque::new(),
            reuse,
        }
    }

    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        if self.reuse {
            while let Some(offset) = self.freed.pop_front() {
                if self.in_use.insert(offset) {
                    return Some(Ipv4Addr::from(self.base + offset));
                }
            }
        }
        // Offsets 0 (network) and size-1 (broadcast) are never handed out.
        let usable = self.size.saturating_sub(2);
        for _ in 0..usable {
            let offset = self.cursor;
            self.cursor = if self.cursor + 1 >= self.size - 1 {
                1
            } else {
                self.cursor + 1
            };
            if self.in_use.insert(offset) {
                return Some(Ipv4Addr::from(self.base + offset));
            }
        }
        None
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        let offset = u32::from(ip).wrapping_sub(self.base);
        if self.in_use.remove(&offset) && self.reuse {
            self.freed.push_back(offset);
        }
    }

    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> PodCidr {
        s.parse().unwrap_or_else(|e: String| panic!("{e}"))
    }

    #[test]
    fn cidrs_must_be_loopback() {
        assert_eq!(cidr("127.10.0.0/16").to_string(), "127.10.0.0/16");
        assert_eq!(cidr("127.10.3.7/24").to_string(), "127.10.3.0/24");
        assert!("10.0.0.0/16".parse::<PodCidr>().is_err());
        assert!("127.0.0.0/31".parse::<PodCidr>().is_err());
        assert!("127.0.0.0".parse::<PodCidr>().is_err());
    }

    #[test]
    fn addresses_are_unique_and_round_robin() {
        let mut ipam = Ipam::new(cidr("127.10.0.0/29"), false);
        let ips: Vec<_> = (0..6).filter_map(|_| ipam.allocate()).collect();
        assert_eq!(ips.len(), 6);
        assert_eq!(ips[0], Ipv4Addr::new(127, 10, 0, 1));
        assert_eq!(ips[5], Ipv4Addr::new(127, 10, 0, 6));
        assert!(ipam.allocate().is_none(), "a /29 has 6 usable addresses");
        ipam.release(ips[2]);
        ipam.release(ips[4]);
        assert_eq!(
            ipam.allocate(),
            Some(ips[2]),
            "round robin finds the first free one after the cursor"
        );
    }

    #[test]
    fn reuse_mode_hands_freed_addresses_out_first() {
        let mut ipam = Ipam::new(cidr("127.10.0.0/24"), true);
        let a = ipam.allocate();
        let _b = ipam.allocate();
        if let Some(a) = a {
            ipam.release(a);
        }
        assert_eq!(ipam.allocate(), a);
        assert_eq!(ipam.in_use(), 2);
    }
}
