//! One module per subcommand. Each has its clap `*Args` struct (the flags and their
//! `--help`) and a `run` function.

pub mod backup;
pub mod bench;
pub mod cluster;
pub mod compile_worker;
pub mod config;
pub mod deploy;
pub mod desired;
pub mod dev;
pub mod doctor;
pub mod info;
pub mod init;
pub mod invoke;
pub mod logs;
pub mod ls;
pub mod new;
pub mod release;
pub mod rm;
pub mod schedule;
pub mod serve;
pub mod shell;
pub mod token;
pub mod trigger;

/// Parses a function name argument: non-empty and free of the characters that would
/// change the meaning of a URL path.
///
/// The server owns the naming rules; this only catches what would otherwise address the
/// wrong resource (`a/b`) or nothing at all.
pub(crate) fn parse_function_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("a function name cannot be empty".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '%') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{bad:?} cannot appear in a function name; use letters, digits, '-' and '_'"
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        assert_eq!(parse_function_name("hello").unwrap(), "hello");
        assert_eq!(parse_function_name("hello@3").unwrap(), "hello@3");
        for bad in ["", "a/b", "a b", "a?x", "a#b", "a%2f", "a\n"] {
            assert!(parse_function_name(bad).is_err(), "{bad:?}");
        }
    }
}
