//! The content digest that names a component everywhere: in the blob store,
//! the artifact cache, the registry and the manifest's desired state.

use sha2::{Digest as _, Sha256};
use std::fmt;

/// The SHA-256 of a component's bytes, shown as `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// Parses `sha256:<64 hex>` or bare hex.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(hex.to_ascii_lowercase()))
    }

    /// The lowercase hex, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips() {
        let d = Digest::of(b"abc");
        assert_eq!(Digest::parse(&d.to_string()), Some(d.clone()));
        assert!(d.to_string().starts_with("sha256:ba7816bf"));
        assert_eq!(Digest::parse("sha256:xyz"), None);
    }
}
