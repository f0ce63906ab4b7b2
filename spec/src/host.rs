//! Entries of a function's `allowed_outbound_hosts`: their syntax, checked
//! when a configuration is validated, and how they match a request's host.
//!
//! The runtime's outbound policy enforces them (and refuses non-public
//! addresses unless an entry names the IP literally).

use std::net::IpAddr;

/// One entry of `allowed_outbound_hosts`: `host`, `host:port`, `*.domain`,
/// `[v6]` or `[v6]:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lowercase host, without a leading `*.` for wildcards.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `host`, `host:port`, `*.domain`, `[v6]` or `[v6]:port`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() || entry.contains('/') || entry.contains('@') {
            return Err(format!(
                "{entry:?} is not a host; write `host`, `host:port` or `*.domain` without a scheme or path"
            ));
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (v6, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{entry:?}: unclosed `[`"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().map_err(|_| format!("{entry:?}: bad port"))?),
                None if after.is_empty() => None,
                None => return Err(format!("{entry:?}: unexpected {after:?}")),
            };
            (v6.to_string(), port)
        } else {
            match entry.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    Some(
                        p.parse()
                            .map_err(|_| format!("{entry:?}: bad port {p:?}"))?,
                    ),
                ),
                None => (entry.clone(), None),
            }
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(rest) => (rest.to_string(), true),
            None => (host, false),
        };
        if host.is_empty() || host.contains('*') {
            return Err(format!("{entry:?}: `*` is only allowed as a leading `*.`"));
        }
        Ok(Self {
            host,
            wildcard,
            port,
        })
    }

    /// Whether a request to `host:port` matches; `host` is lowercase and an
    /// IPv6 address comes without its brackets.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        if self.wildcard {
            host.strip_suffix(&self.host)
                .is_some_and(|prefix| prefix.ends_with('.'))
        } else {
            host == self.host
        }
    }

    /// Whether the entry names an IP address literally (no wildcard).
    pub fn is_ip_literal(&self) -> bool {
        !self.wildcard && self.host.parse::<IpAddr>().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_hosts_and_ports() {
        let p = HostPattern::parse("api.example.com").unwrap();
        assert!(p.matches("api.example.com", 443));
        assert!(!p.matches("evil.com", 443));
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("a.example.com", 80));
        assert!(!p.matches("example.com", 80));
        assert!(!p.matches("aexample.com", 80));
        let p = HostPattern::parse("127.0.0.1:8080").unwrap();
        assert!(p.matches("127.0.0.1", 8080));
        assert!(!p.matches("127.0.0.1", 8081));
        assert!(p.is_ip_literal());
        let p = HostPattern::parse("[::1]:8080").unwrap();
        assert!(p.matches("::1", 8080));
        assert!(p.is_ip_literal());
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in ["", "http://x", "x/y", "a*.b", "host:port", "[::1"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
