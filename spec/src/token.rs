//! API tokens: their scopes, the globs that narrow them, and the request
//! that creates one.
//!
//! A token is a bearer secret (`flint_…`) with one scope. `read` sees
//! everything under `/v1` but tokens; `invoke` calls functions that ask for
//! a token; `deploy` reads, invokes and changes the functions its globs
//! match; `admin` does everything. Secret globs say which `secret:NAME`
//! references a token may put into a function's environment.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What every token starts with, so that secret scanners can find leaked
/// ones.
pub const TOKEN_PREFIX: &str = "flint_";
/// Most globs of one kind on a token.
pub const MAX_GLOBS: usize = 64;
/// The longest a token may live: ten years. Longer ones would be as good as
/// never expiring, and far enough out overflow the clock.
pub const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 3600;
/// Longest glob.
pub const MAX_GLOB_LEN: usize = 128;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every `GET` under `/v1` except tokens.
    Read,
    /// Calls functions whose `invoke_auth` is `token`.
    Invoke,
    /// `read` and `invoke`, plus every change to the functions its globs
    /// match.
    Deploy,
    /// Everything.
    Admin,
}

impl Scope {
    /// Every scope, least to most.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Invoke, Scope::Deploy, Scope::Admin];

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Invoke => "invoke",
            Self::Deploy => "deploy",
            Self::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn covers(self, needed: Scope) -> bool {
        match self {
            Self::Admin => true,
            Self::Deploy => needed != Self::Admin,
            Self::Read | Self::Invoke => self == needed,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}; use read, invoke, deploy or admin"))
    }
}

/// A name pattern: `*` matches any run of characters, `?` one character.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Glob(String);

impl Glob {
    /// Parses a glob: 1 to [`MAX_GLOB_LEN`] characters of names, `*` and `?`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '?');
        if text.is_empty() || text.len() > MAX_GLOB_LEN || !text.chars().all(ok) {
            return Err(format!(
                "invalid glob {text:?}: use 1-{MAX_GLOB_LEN} letters, digits, `-`, `_`, `.`, `*` or `?`"
            ));
        }
        Ok(Self(text.to_string()))
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let pattern = glob::Pattern::new(&self.0).expect("parse admits only valid patterns");
        pattern.matches(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Glob {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Glob> for String {
    fn from(glob: Glob) -> Self {
        glob.0
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether any of `globs` matches `name`; no globs at all match everything.
pub fn any_matches(globs: &[Glob], name: &str) -> bool {
    globs.is_empty() || globs.iter().any(|g| g.matches(name))
}

/// A request to create a token (`POST /v1/tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Unique among tokens; recorded as the actor of every change it makes.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Functions it covers; none covers every function.
    #[serde(default)]
    pub functions: Vec<Glob>,
    /// Secrets it may reference in a function's env; none covers no secret
    /// (an `admin` token covers every secret).
    #[serde(default)]
    pub secrets: Vec<Glob>,
    /// Seconds until it expires; none never expires.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

impl TokenSpec {
    /// Checks the name and the number of globs; the error says what is
    /// allowed.
    pub fn validate(&self) -> Result<(), String> {
        if !crate::is_valid_name(&self.name) {
            return Err(format!(
                "invalid token name {:?}: use 1-{} lowercase letters, digits or `-`",
                self.name,
                crate::MAX_NAME_LEN
            ));
        }
        for (what, globs) in [("functions", &self.functions), ("secrets", &self.secrets)] {
            if globs.len() > MAX_GLOBS {
                return Err(format!(
                    "{} {what} globs; at most {MAX_GLOBS} allowed",
                    globs.len()
                ));
            }
        }
        if let Some(secs) = self.expires_in_secs
            && !(1..=MAX_EXPIRES_IN_SECS).contains(&secs)
        {
            return Err(format!(
                "expires_in_secs must be 1..={MAX_EXPIRES_IN_SECS} (ten years), not {secs}; leave it out for a token that never expires"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_cover_what_they_should() {
        use Scope::*;
        assert!(Admin.covers(Admin) && Admin.covers(Read) && Admin.covers(Invoke));
        assert!(Deploy.covers(Read) && Deploy.covers(Invoke) && Deploy.covers(Deploy));
        assert!(!Deploy.covers(Admin));
        assert!(Read.covers(Read) && !Read.covers(Invoke) && !Read.covers(Deploy));
        assert!(Invoke.covers(Invoke) && !Invoke.covers(Read));
        assert_eq!("deploy".parse::<Scope>(), Ok(Deploy));
        assert!(
            "root"
                .parse::<Scope>()
                .unwrap_err()
                .contains("read, invoke")
        );
    }

    #[test]
    fn globs_match_whole_names() {
        let orders = Glob::parse("orders-*").unwrap();
        assert!(orders.matches("orders-api") && orders.matches("orders-"));
        assert!(!orders.matches("payments") && !orders.matches("x-orders-api"));
        assert!(Glob::parse("db-?").unwrap().matches("db-1"));
        assert!(!Glob::parse("db-?").unwrap().matches("db-10"));
        assert!(any_matches(&[], "anything"));
        for bad in ["", "a/b", "[abc]", "a b", &"x".repeat(MAX_GLOB_LEN + 1)] {
            assert!(Glob::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn specs_are_checked() {
        let spec: TokenSpec = serde_json::from_str(
            r#"{"name":"ci","scope":"deploy","functions":["orders-*"],"expires_in_secs":60}"#,
        )
        .unwrap();
        assert!(spec.validate().is_ok());
        let bad: Result<TokenSpec, _> =
            serde_json::from_str(r#"{"name":"ci","scope":"deploy","functions":["a/b"]}"#);
        assert!(bad.unwrap_err().to_string().contains("invalid glob"));
        for secs in [0, MAX_EXPIRES_IN_SECS + 1, u64::MAX] {
            let spec = TokenSpec {
                expires_in_secs: Some(secs),
                ..spec.clone()
            };
            assert!(
                spec.validate().unwrap_err().contains("expires_in_secs"),
                "{secs}"
            );
        }
        let spec = TokenSpec {
            name: "Bad Name".into(),
            ..spec
        };
        assert!(spec.validate().unwrap_err().contains("token name"));
    }
}
