//! The kinds of program a function can be, and how an upload names one.

use serde::{Deserialize, Serialize};

/// What a version's Wasm is, and so how Flint runs it. Detected from the
/// upload's bytes; an uploader may also state it, and is refused when the
/// bytes are another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    /// A component exporting `wasi:http/incoming-handler` (WASI 0.2): it
    /// gets the request as a `wasi:http` resource and streams its answer.
    #[default]
    Http,
    /// A component exporting `wasi:http/handler` (WASI 0.3): its handler is
    /// async, so one instance may serve several requests at once.
    #[serde(rename = "http-p3")]
    HttpP3,
    /// A WASI 0.1 command module (exports `_start`), run as a CGI script
    /// the way WAGI does: the request is its environment and stdin, and its
    /// stdout is parsed as a CGI response.
    Wagi,
}

impl FunctionKind {
    /// Every kind, in the order listings show them.
    pub const ALL: [FunctionKind; 3] = [Self::Http, Self::HttpP3, Self::Wagi];

    /// The kind's name in the API, the registry and `--kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::HttpP3 => "http-p3",
            Self::Wagi => "wagi",
        }
    }

    /// What the kind is, in a few words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Http => "wasi:http 0.2 component",
            Self::HttpP3 => "wasi:http 0.3 component, several requests per instance at once",
            Self::Wagi => "WASI 0.1 command module, run as CGI (WAGI)",
        }
    }
}

impl std::fmt::Display for FunctionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FunctionKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown function kind `{s}`; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in FunctionKind::ALL {
            assert_eq!(kind.as_str().parse::<FunctionKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
        let err = "cgi".parse::<FunctionKind>().unwrap_err();
        assert!(err.contains("http, http-p3, wagi"), "{err}");
    }
}
