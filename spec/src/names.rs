//! Naming rules: function names, alias names, the implicit `latest` alias
//! and the alias a release moves by default.

/// Longest function (and alias) name.
pub const MAX_NAME_LEN: usize = 63;

/// The implicit alias that always means the newest version.
pub const LATEST: &str = "latest";

/// The alias a release moves when none is named (blue-green, canary,
/// rollback, and a manifest's release policy).
pub const DEFAULT_RELEASE_ALIAS: &str = "prod";

/// [`DEFAULT_RELEASE_ALIAS`] as a serde default.
pub fn default_release_alias() -> String {
    DEFAULT_RELEASE_ALIAS.into()
}

/// Whether `name` is a valid function name: 1-[`MAX_NAME_LEN`] lowercase
/// ASCII letters, digits or `-`, so that it is safe in URL paths, file names
/// and queue names alike.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks a function name; the error states the rule.
pub fn check_function_name(name: &str) -> Result<(), String> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid function name {name:?}: use 1-{MAX_NAME_LEN} lowercase letters, digits or `-`"
        ))
    }
}

/// Alias names: like function names, but never all digits (that is a
/// version) and never `latest`.
pub fn validate_alias_name(name: &str) -> Result<(), String> {
    if !is_valid_name(name) || name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid alias name {name:?}: use 1-{MAX_NAME_LEN} lowercase letters, digits or `-`, not all digits"
        ));
    }
    if name == LATEST {
        return Err("`latest` is implicit (the newest version) and cannot be set".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        for good in [
            "a",
            "hello",
            "my-func-2",
            "2fast",
            &"a".repeat(MAX_NAME_LEN),
        ] {
            assert!(is_valid_name(good), "{good}");
            assert!(check_function_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Hello",
            "a_b",
            "a/b",
            "é",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert_eq!(
            check_function_name("Orders").unwrap_err(),
            "invalid function name \"Orders\": use 1-63 lowercase letters, digits or `-`"
        );
    }

    #[test]
    fn alias_names() {
        assert!(validate_alias_name(DEFAULT_RELEASE_ALIAS).is_ok());
        assert!(validate_alias_name("v2").is_ok());
        for bad in ["", "123", "latest", "Prod", "a_b"] {
            assert!(validate_alias_name(bad).is_err(), "{bad}");
        }
        assert!(
            validate_alias_name(LATEST)
                .unwrap_err()
                .contains("is implicit")
        );
    }
}
