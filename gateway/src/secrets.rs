//! Secrets: a function's `env` value `secret:NAME` is a reference, resolved
//! by the server when it builds the function's sandbox, from the variable
//! `FLINT_SECRET_<NAME>` of its own environment (upper-cased, `-` and `.`
//! as `_`) or else from the secrets file (`--secrets-file`, `NAME=value`
//! lines). The registry, the API and manifests only ever hold the
//! reference; the value reaches the guest and nothing else.

use flint_spec::FunctionConfig;
use std::collections::BTreeMap;
use std::path::Path;

/// What marks an env value as a reference.
pub const PREFIX: &str = "secret:";
/// Longest secret name.
const MAX_NAME_LEN: usize = 128;

/// The secret name an env value refers to, if it is a reference.
pub fn reference(value: &str) -> Option<&str> {
    value.strip_prefix(PREFIX)
}

/// The environment variable that holds secret `name`.
pub fn env_var(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("FLINT_SECRET_{upper}")
}

/// The secrets this server can resolve.
#[derive(Debug, Default)]
pub struct Secrets {
    file: BTreeMap<String, String>,
    file_path: Option<String>,
}

impl Secrets {
    /// Reads the secrets file, if one is given: `NAME=value` per line,
    /// blank lines and `#` comments ignored.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = file else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the secrets file {}: {e}", path.display()))?;
        let mut file = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                anyhow::bail!("{}:{}: expected NAME=value", path.display(), n + 1);
            };
            let name = name.trim();
            check_name(name).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?;
            file.insert(name.to_string(), value.to_string());
        }
        Ok(Self {
            file,
            file_path: Some(path.display().to_string()),
        })
    }

    fn get(&self, name: &str) -> Option<String> {
        std::env::var(env_var(name))
            .ok()
            .or_else(|| self.file.get(name).cloned())
    }

    /// Checks that every reference in `config` names a secret this server
    /// has; the error says where to put a missing one.
    pub fn check(&self, config: &FunctionConfig) -> Result<(), String> {
        for (key, value) in &config.env {
            let Some(name) = reference(value) else {
                continue;
            };
            check_name(name).map_err(|e| format!("env `{key}`: {e}"))?;
            if self.get(name).is_none() {
                let file = match &self.file_path {
                    Some(path) => format!("add `{name}=...` to {path}"),
                    None => "start the server with --secrets-file".into(),
                };
                return Err(format!(
                    "env `{key}` refers to secret `{name}`, which the server does not have; set {} in the server's environment or {file}",
                    env_var(name)
                ));
            }
        }
        Ok(())
    }

    /// `config` with every reference replaced by its value, for the
    /// sandbox; fails like [`Self::check`].
    pub fn resolve(&self, config: &FunctionConfig) -> Result<FunctionConfig, String> {
        self.check(config)?;
        let mut resolved = config.clone();
        for value in resolved.env.values_mut() {
            if let Some(secret) = reference(value).and_then(|name| self.get(name)) {
                *value = secret;
            }
        }
        Ok(resolved)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid secret name {name:?}: use 1-{MAX_NAME_LEN} letters, digits, `-`, `_` or `.`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_from_the_file_and_name_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "# db\nflint-test-db=s3cr=et\n\n").unwrap();
        let secrets = Secrets::load(Some(&path)).unwrap();
        let mut config = FunctionConfig::default();
        config
            .env
            .insert("DB".into(), "secret:flint-test-db".into());
        config.env.insert("MODE".into(), "live".into());
        let resolved = secrets.resolve(&config).unwrap();
        assert_eq!(resolved.env["DB"], "s3cr=et");
        assert_eq!(resolved.env["MODE"], "live");

        config
            .env
            .insert("API".into(), "secret:flint-test-missing".into());
        let e = secrets.check(&config).unwrap_err();
        assert!(e.contains("FLINT_SECRET_FLINT_TEST_MISSING"), "{e}");
        config.env.insert("API".into(), "secret:bad name".into());
        assert!(
            secrets
                .check(&config)
                .unwrap_err()
                .contains("invalid secret name")
        );
    }

    #[test]
    fn malformed_files_are_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "ok=1\nnot a pair\n").unwrap();
        let e = Secrets::load(Some(&path)).unwrap_err().to_string();
        assert!(e.ends_with(":2: expected NAME=value"), "{e}");
    }
}
