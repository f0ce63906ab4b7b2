//! Formatting for people and for scripts: tables, key/value sections, sizes, digests, ages
//! and the raw JSON that `--json` prints.
//!
//! Everything here is pure (strings in, strings out) so that it can be unit-tested; the
//! commands decide where the text goes. Results go to stdout, progress and notes to stderr,
//! so that `flint ls --json | jq` and `flint invoke f > out.bin` stay clean.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use serde_json::{Map, Value};

/// How many hex digits of a digest tables and messages show (as `docker images` does).
pub const SHORT_DIGEST_LEN: usize = 12;

/// Writes `text` to stdout, adding a final newline when it lacks one.
///
/// Goes through a locked handle and returns the error instead of panicking as `println!`
/// does, so that `flint logs f | head` ends quietly on a closed pipe.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes a JSON value to stdout, pretty-printed: what `--json` prints.
pub fn print_json(value: &Value) -> io::Result<()> {
    print(&to_pretty_json(value))
}

/// Pretty-prints a JSON value.
pub fn to_pretty_json(value: &Value) -> String {
    // Serializing a `Value` cannot fail: its map keys are always strings.
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Formats a byte count with binary units: `512 B`, `12.1 KiB`, `1.2 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up a unit when rounding to one decimal would print "1024.0".
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Formats a duration in milliseconds: one decimal below 10 ms, whole milliseconds above.
pub fn human_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// The first [`SHORT_DIGEST_LEN`] hex digits of a digest, without its `sha256:` prefix.
pub fn short_hex(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.get(..SHORT_DIGEST_LEN).unwrap_or(hex)
}

/// A digest shortened for messages, keeping the algorithm: `sha256:abcdef012345…`.
pub fn short_digest(digest: &str) -> String {
    let hex = short_hex(digest);
    let algorithm = digest.split_once(':').map(|(algorithm, _)| algorithm);
    let full_len = digest.split_once(':').map_or(digest, |(_, hex)| hex).len();
    let ellipsis = if full_len > hex.len() { "…" } else { "" };
    match algorithm {
        Some(algorithm) => format!("{algorithm}:{hex}{ellipsis}"),
        None => format!("{hex}{ellipsis}"),
    }
}

/// How long ago an RFC 3339 UTC timestamp was, compactly (`just now`, `42s ago`, `5m ago`,
/// `3h ago`, `12d ago`), relative to `now`. A timestamp that does not parse is shown as is.
pub fn age(timestamp: &str, now: SystemTime) -> String {
    let Ok(then) = humantime::parse_rfc3339_weak(timestamp) else {
        return timestamp.to_owned();
    };
    let Ok(elapsed) = now.duration_since(then) else {
        // A server clock slightly ahead of ours.
        return "just now".to_owned();
    };
    compact_duration(elapsed)
        .map(|d| format!("{d} ago"))
        .unwrap_or_else(|| "just now".to_owned())
}

fn compact_duration(d: Duration) -> Option<String> {
    let secs = d.as_secs();
    Some(match secs {
        0 => return None,
        1..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    })
}

/// Renders a borderless table (as `kubectl get` and `docker ps` print them), with the
/// columns whose indexes are in `right_aligned` aligned right (numbers).
///
/// Lines carry no trailing whitespace and the result ends without a newline.
pub fn table(header: &[&str], rows: &[Vec<String>], right_aligned: &[usize]) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        // Never wrap: scripts that cut columns need one row per line.
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row.iter().map(String::as_str));
    }
    for (index, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if right_aligned.contains(&index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    trim_lines(&table.to_string())
}

/// Renders aligned `key  value` lines, each indented by `indent` spaces. A value with
/// several lines continues under the first, aligned with it.
pub fn key_values(pairs: &[(String, String)], indent: usize) -> String {
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        let _ = writeln!(out, "{:indent$}{key:<width$}  {first}", "");
        for line in lines {
            let _ = writeln!(out, "{:indent$}{:width$}  {line}", "", "");
        }
    }
    trim_lines(&out)
}

fn trim_lines(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Shows a JSON value to a person: strings without quotes, `null` as `-`, arrays one item
/// per line (`(none)` when empty), objects as `key=value` lines, sorted by key.
pub fn json_value_text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "(none)".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(json_value_text)
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(map) if map.is_empty() => "(none)".to_owned(),
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            entries
                .into_iter()
                .map(|(key, value)| format!("{key}={}", json_value_text(value)))
                .collect::<Vec<_>>()
                .join("\n")
        }
        other => other.to_string(),
    }
}

/// The fields of a JSON object as `(key, text)` pairs for [`key_values`]: the keys in
/// `order` first, in that order, then any others the server added, sorted.
pub fn object_pairs(object: &Map<String, Value>, order: &[&str]) -> Vec<(String, String)> {
    let known = order
        .iter()
        .filter_map(|key| Some((*key, object.get(*key)?)));
    let mut extra: Vec<_> = object
        .iter()
        .filter(|(key, _)| !order.contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    extra.sort_by(|a, b| a.0.cmp(b.0));
    known
        .chain(extra)
        .map(|(key, value)| (key.to_owned(), json_value_text(value)))
        .collect()
}

/// Standard base64 (RFC 4648, with padding), for response bodies that are not UTF-8 in
/// `flint invoke --json`.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::prelude::BASE64_STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_use_binary_units() {
        let cases = [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (12_390, "12.1 KiB"),
            (1024 * 1024 - 1, "1.0 MiB"),
            (1_258_291, "1.2 MiB"),
            (5 * 1024 * 1024 * 1024, "5.0 GiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(human_size(bytes), expected, "{bytes} bytes");
        }
    }

    #[test]
    fn milliseconds() {
        assert_eq!(human_ms(120.5), "120 ms");
        assert_eq!(human_ms(3.25), "3.2 ms");
        assert_eq!(human_ms(0.0), "0.0 ms");
    }

    #[test]
    fn digests_shorten_to_twelve_hex_digits() {
        let digest = "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
        assert_eq!(short_hex(digest), "abcdef012345");
        assert_eq!(short_digest(digest), "sha256:abcdef012345…");
        assert_eq!(short_hex("abc"), "abc");
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
        assert_eq!(short_digest("abcdef0123456789"), "abcdef012345…");
    }

    #[test]
    fn ages_are_compact() {
        let now = humantime::parse_rfc3339("2026-11-26T10:00:00Z").unwrap();
        let cases = [
            ("2026-11-26T10:00:00Z", "just now"),
            ("2026-11-26T10:00:01Z", "just now"),
            ("2026-11-26T09:59:18.5Z", "41s ago"),
            ("2026-11-26T09:55:00Z", "5m ago"),
            ("2026-11-26T07:00:00Z", "3h ago"),
            ("2026-11-14T10:00:00Z", "12d ago"),
            ("yesterday", "yesterday"),
        ];
        for (timestamp, expected) in cases {
            assert_eq!(age(timestamp, now), expected, "{timestamp}");
        }
    }

    #[test]
    fn tables_are_borderless_and_aligned() {
        let rows = vec![
            vec!["hello".to_owned(), "3".to_owned(), "1.2 MiB".to_owned()],
            vec![
                "a-longer-name".to_owned(),
                "12".to_owned(),
                "512 B".to_owned(),
            ],
        ];
        let text = table(&["NAME", "VERSION", "SIZE"], &rows, &[1, 2]);
        assert_eq!(
            text,
            "NAME           VERSION     SIZE\n\
             hello                3  1.2 MiB\n\
             a-longer-name       12    512 B"
        );
    }

    #[test]
    fn table_with_only_a_header() {
        assert_eq!(table(&["A", "B"], &[], &[]), "A  B");
    }

    #[test]
    fn key_values_align_and_continue_lines() {
        let pairs = vec![
            ("memory_mb".to_owned(), "128".to_owned()),
            ("env".to_owned(), "A=1\nB=2".to_owned()),
        ];
        assert_eq!(
            key_values(&pairs, 2),
            "  memory_mb  128\n  env        A=1\n             B=2"
        );
    }

    #[test]
    fn json_values_for_people() {
        assert_eq!(json_value_text(&json!(null)), "-");
        assert_eq!(json_value_text(&json!("x")), "x");
        assert_eq!(json_value_text(&json!(42)), "42");
        assert_eq!(json_value_text(&json!(true)), "true");
        assert_eq!(json_value_text(&json!([])), "(none)");
        assert_eq!(json_value_text(&json!(["a.com", "b.org"])), "a.com\nb.org");
        assert_eq!(json_value_text(&json!({})), "(none)");
        assert_eq!(json_value_text(&json!({"B": "2", "A": 1})), "A=1\nB=2");
    }

    #[test]
    fn object_pairs_in_order() {
        let object = json!({"zeta": 1, "b": 2, "a": 3, "extra": "x"});
        let Value::Object(object) = object else {
            unreachable!()
        };
        let keys: Vec<_> = object_pairs(&object, &["b", "missing", "a"])
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(keys, ["b", "a", "extra", "zeta"]);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
