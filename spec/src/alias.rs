//! Aliases: named pointers to a version or a weighted split of versions,
//! with optional stickiness and header rules, and how a request picks its
//! version through one.
//!
//! Alias names follow [`validate_alias_name`](crate::names::validate_alias_name);
//! `latest` ([`LATEST`](crate::names::LATEST)) is implicit.

use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};

/// One version and its share of traffic, in percent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The version.
    pub version: u32,
    /// Percent of requests (all routes sum to 100).
    pub weight: u32,
}

/// What keeps a caller on one version of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum Sticky {
    /// The value of this request header.
    Header(String),
    /// The value of this cookie.
    Cookie(String),
}

/// Requests whose header equals a value go to a given version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Header name (case-insensitive).
    pub header: String,
    /// Exact value to match.
    pub value: String,
    /// Version for matching requests.
    pub version: u32,
}

/// Where an alias points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasTarget {
    /// The split (one route of weight 100 for a plain pointer).
    pub routes: Vec<Route>,
    /// Stickiness of the split, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Header rules, checked in order before the split.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

impl AliasTarget {
    /// A plain pointer to one version.
    pub fn version(version: u32) -> Self {
        Self {
            routes: vec![Route {
                version,
                weight: 100,
            }],
            sticky: None,
            rules: Vec::new(),
        }
    }

    /// Every version this target can send traffic to.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.routes
            .iter()
            .map(|r| r.version)
            .chain(self.rules.iter().map(|r| r.version))
    }

    /// The version with the largest weight (the "stable" side of a split).
    pub fn main_version(&self) -> u32 {
        self.routes
            .iter()
            .max_by_key(|r| r.weight)
            .map_or(0, |r| r.version)
    }

    /// Checks weights and that every version exists.
    pub fn validate(&self, exists: impl Fn(u32) -> bool) -> Result<(), String> {
        if self.routes.is_empty() {
            return Err("`routes` needs at least one version".into());
        }
        let total: u32 = self.routes.iter().map(|r| r.weight).sum();
        if total != 100 {
            return Err(format!(
                "route weights sum to {total}; they must sum to 100"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.routes {
            if !seen.insert(r.version) {
                return Err(format!("version {} appears twice in `routes`", r.version));
            }
        }
        for v in self.versions() {
            if !exists(v) {
                return Err(format!("version {v} does not exist"));
            }
        }
        for rule in &self.rules {
            if http::HeaderName::from_bytes(rule.header.as_bytes()).is_err() {
                return Err(format!("{:?} is not a header name", rule.header));
            }
        }
        match &self.sticky {
            Some(Sticky::Header(h)) if http::HeaderName::from_bytes(h.as_bytes()).is_err() => {
                Err(format!("sticky header {h:?} is not a header name"))
            }
            Some(Sticky::Cookie(c)) if c.is_empty() => Err("sticky cookie name is empty".into()),
            _ => Ok(()),
        }
    }

    /// Picks the version for a request.
    pub fn choose(&self, headers: &http::HeaderMap) -> u32 {
        for rule in &self.rules {
            if headers
                .get(rule.header.as_str())
                .is_some_and(|v| v.as_bytes() == rule.value.as_bytes())
            {
                return rule.version;
            }
        }
        if let [only] = self.routes.as_slice() {
            return only.version;
        }
        let key = self.sticky.as_ref().and_then(|s| sticky_key(s, headers));
        let point = match key {
            Some(key) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                h.finish() % 100
            }
            None => percent_roll() as u64,
        } as u32;
        let mut acc = 0;
        for r in &self.routes {
            acc += r.weight;
            if point < acc {
                return r.version;
            }
        }
        self.routes[self.routes.len() - 1].version
    }
}

fn sticky_key(sticky: &Sticky, headers: &http::HeaderMap) -> Option<String> {
    match sticky {
        Sticky::Header(name) => headers.get(name.as_str())?.to_str().ok().map(String::from),
        Sticky::Cookie(name) => headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string()),
    }
}

/// A uniform number in 0..100 from a cheap per-thread generator.
pub fn percent_roll() -> u32 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0x9e37_79b9, |d| d.as_nanos() as u64) | 1
        );
    }
    STATE.with(|s| {
        // xorshift64*
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        ((x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % 100) as u32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn split(a: u32, b: u32) -> AliasTarget {
        AliasTarget {
            routes: vec![
                Route {
                    version: 1,
                    weight: a,
                },
                Route {
                    version: 2,
                    weight: b,
                },
            ],
            sticky: None,
            rules: Vec::new(),
        }
    }

    #[test]
    fn weights_rules_and_stickiness() {
        let mut t = split(90, 10);
        let n = 20_000;
        let twos = (0..n)
            .filter(|_| t.choose(&http::HeaderMap::new()) == 2)
            .count();
        assert!((1500..2500).contains(&twos), "{twos}");
        t.rules.push(Rule {
            header: "x-beta".into(),
            value: "1".into(),
            version: 2,
        });
        assert_eq!(t.choose(&headers(&[("x-beta", "1")])), 2);
        t.sticky = Some(Sticky::Cookie("uid".into()));
        let h = headers(&[("cookie", "a=b; uid=alice")]);
        let first = t.choose(&h);
        assert!((0..100).all(|_| t.choose(&h) == first));
    }

    #[test]
    fn validation() {
        assert!(split(50, 50).validate(|_| true).is_ok());
        assert!(
            split(50, 40)
                .validate(|_| true)
                .unwrap_err()
                .contains("sum to 90")
        );
        assert!(
            split(50, 50)
                .validate(|v| v == 1)
                .unwrap_err()
                .contains("version 2")
        );
    }
}
