//! Custom HTTP routes: a function can serve route patterns besides
//! `/fn/NAME/...`, so several functions stand behind one service's URL space
//! (`/orders/...` to one, `/customers/...` to another).
//!
//! A pattern is either exact (`/orders`: that path only) or a prefix
//! (`/orders/...`: `/orders` and everything below it). A request goes to
//! the exact pattern equal to its path, else to the longest prefix that
//! covers it; the function sees the whole path. Two functions may not claim
//! the same pattern, and the server's own paths (`/fn`, `/async`, `/v1`,
//! `/healthz`, `/readyz`, `/metrics`) cannot be claimed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// First path segments the server keeps for itself.
const RESERVED: &[&str] = &["fn", "async", "v1", "healthz", "readyz", "metrics"];
/// Longest pattern.
const MAX_PATTERN_LEN: usize = 256;
/// Most patterns per function.
pub const MAX_ROUTES_PER_FUNCTION: usize = 32;

/// A parsed route pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pattern {
    /// This path only.
    Exact(String),
    /// This path and everything below it (written `/base/...`).
    Prefix(String),
}

impl Pattern {
    /// Parses and normalises `/a/b` or `/a/b/...`; the error says what is
    /// wrong.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err(format!("route {pattern:?} must start with `/`"));
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "route {pattern:?} is longer than {MAX_PATTERN_LEN} characters"
            ));
        }
        let (base, prefix) = match pattern.strip_suffix("/...") {
            Some(base) => (base, true),
            None if pattern == "/..." => ("", true),
            None => (pattern, false),
        };
        let base = base.trim_end_matches('/');
        for segment in base.split('/').skip(1) {
            let ok = !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment != "..."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
            if !ok {
                return Err(format!(
                    "route {pattern:?}: segment {segment:?} is not allowed; use letters, digits, `-`, `_`, `.`, `~`, and `/...` only at the end"
                ));
            }
        }
        if let Some(first) = base.split('/').nth(1)
            && RESERVED.contains(&first)
        {
            return Err(format!(
                "route {pattern:?} is under `/{first}`, which the server keeps for itself"
            ));
        }
        if base.is_empty() && !prefix {
            return Ok(Self::Exact("/".into()));
        }
        Ok(if prefix {
            Self::Prefix(base.to_string())
        } else {
            Self::Exact(base.to_string())
        })
    }

    /// Whether `path` (without its query) falls under this pattern.
    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => path == p,
            Self::Prefix(base) => {
                path == base
                    || base.is_empty()
                    || path
                        .strip_prefix(base.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }

    /// More specific patterns sort first: exact before prefix, longer
    /// before shorter.
    fn specificity(&self) -> (u8, usize) {
        match self {
            Self::Exact(p) => (0, usize::MAX - p.len()),
            Self::Prefix(p) => (1, usize::MAX - p.len()),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(p) => f.write_str(p),
            Self::Prefix(p) => write!(f, "{p}/..."),
        }
    }
}

/// Parses every function's patterns and checks that no pattern is claimed
/// twice; returns the table's entries or every problem found.
pub fn check(
    by_function: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<(Pattern, String)>, Vec<String>> {
    let mut owners: BTreeMap<Pattern, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for (function, patterns) in by_function {
        if patterns.len() > MAX_ROUTES_PER_FUNCTION {
            problems.push(format!(
                "{function}: {} routes; at most {MAX_ROUTES_PER_FUNCTION} allowed",
                patterns.len()
            ));
        }
        for raw in patterns {
            match Pattern::parse(raw) {
                Err(e) => problems.push(format!("{function}: {e}")),
                Ok(pattern) => match owners.get(&pattern) {
                    Some(owner) if owner == function => {}
                    Some(owner) => problems.push(format!(
                        "route conflict: `{pattern}` is claimed by both `{owner}` and `{function}`"
                    )),
                    None => {
                        owners.insert(pattern, function.clone());
                    }
                },
            }
        }
    }
    if problems.is_empty() {
        Ok(owners.into_iter().collect())
    } else {
        Err(problems)
    }
}

/// The live route table, swapped whole on every change.
#[derive(Default)]
pub struct RouteTable {
    routes: RwLock<Arc<Vec<(Pattern, String)>>>,
}

impl RouteTable {
    /// Replaces every route.
    pub fn replace(&self, mut routes: Vec<(Pattern, String)>) {
        routes.sort_by_key(|(p, _)| p.specificity());
        *self.routes.write().unwrap() = Arc::new(routes);
    }

    /// The function that serves `path`, if a route covers it.
    pub fn lookup(&self, path: &str) -> Option<String> {
        let routes = self.routes.read().unwrap().clone();
        if routes.is_empty() {
            return None;
        }
        let trimmed = match path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        routes
            .iter()
            .find(|(p, _)| p.matches(trimmed))
            .map(|(_, f)| f.clone())
    }

    /// Every function's patterns, as written.
    pub fn by_function(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (pattern, function) in self.routes.read().unwrap().iter() {
            out.entry(function.clone())
                .or_default()
                .push(pattern.to_string());
        }
        for patterns in out.values_mut() {
            patterns.sort();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)]) -> RouteTable {
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (f, p) in routes {
            by.entry(f.to_string()).or_default().push(p.to_string());
        }
        let t = RouteTable::default();
        t.replace(check(&by).unwrap());
        t
    }

    #[test]
    fn exact_beats_prefix_and_longer_prefix_wins() {
        let t = table(&[
            ("orders", "/orders/..."),
            ("special", "/orders/special/..."),
            ("count", "/orders/count"),
            ("root", "/"),
        ]);
        assert_eq!(t.lookup("/orders").as_deref(), Some("orders"));
        assert_eq!(t.lookup("/orders/").as_deref(), Some("orders"));
        assert_eq!(t.lookup("/orders/42").as_deref(), Some("orders"));
        assert_eq!(t.lookup("/orders/count").as_deref(), Some("count"));
        assert_eq!(t.lookup("/orders/count/x").as_deref(), Some("orders"));
        assert_eq!(t.lookup("/orders/special/1").as_deref(), Some("special"));
        assert_eq!(t.lookup("/ordersx"), None);
        assert_eq!(t.lookup("/").as_deref(), Some("root"));
        assert_eq!(t.lookup("/other"), None);
    }

    #[test]
    fn bad_patterns_and_conflicts_are_named() {
        for (bad, says) in [
            ("orders", "must start with `/`"),
            ("/v1/x", "keeps for itself"),
            ("/fn/...", "keeps for itself"),
            ("/a/../b", "is not allowed"),
            ("/a//b", "is not allowed"),
            ("/a/.../b", "is not allowed"),
            ("/a b", "is not allowed"),
        ] {
            let e = Pattern::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let mut by = BTreeMap::new();
        by.insert("a".to_string(), vec!["/orders/...".to_string()]);
        by.insert("b".to_string(), vec!["/orders/...".to_string()]);
        let problems = check(&by).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("claimed by both `a` and `b`"),
            "{problems:?}"
        );
        // Trailing slashes normalise: `/orders/` and `/orders` are one route.
        by.insert("b".to_string(), vec!["/x".into(), "/orders/".into()]);
        by.insert("a".to_string(), vec!["/orders".into()]);
        assert!(check(&by).is_err());
    }
}
