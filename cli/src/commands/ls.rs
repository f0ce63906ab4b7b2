//! `flint ls`: lists the deployed functions.

use std::time::SystemTime;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

use crate::Context;
use crate::output::{self, age, human_size, short_hex};

/// Flags of `flint ls`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint ls
  flint ls --json | jq -r '.functions[].name'
  flint ls --server http://flint.internal:8080")]
pub struct LsArgs {}

/// The body of `GET /v1/functions`.
#[derive(Debug, Deserialize)]
struct FunctionList {
    functions: Vec<FunctionSummary>,
}

#[derive(Debug, Deserialize)]
struct FunctionSummary {
    name: String,
    // A function whose stored versions are broken may have none.
    latest_version: Option<u64>,
    digest: Option<String>,
    size_bytes: Option<u64>,
    updated_at: String,
    #[serde(default)]
    invocations: u64,
    /// Why calls fail; `None` while it serves.
    #[serde(default)]
    disabled: Option<String>,
}

/// What `flint ls` prints when no function is deployed.
const EMPTY: &str = "No functions deployed. Deploy one with: flint deploy NAME FILE.wasm";

/// Runs `flint ls`.
pub async fn run(ctx: &Context, _args: LsArgs) -> anyhow::Result<()> {
    let response = ctx.client.get(ctx.client.url(&["v1", "functions"])).await?;
    if ctx.json {
        output::print_json(&response)?;
        return Ok(());
    }
    let list: FunctionList =
        serde_json::from_value(response).context("unexpected function list from the server")?;
    output::print(&render(&list.functions, SystemTime::now()))?;
    Ok(())
}

fn render(functions: &[FunctionSummary], now: SystemTime) -> String {
    if functions.is_empty() {
        return EMPTY.to_owned();
    }
    let mut functions: Vec<_> = functions.iter().collect();
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Vec<String>> = functions
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.latest_version
                    .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                f.digest.as_deref().map_or("-", short_hex).to_owned(),
                f.size_bytes.map_or_else(|| "-".to_owned(), human_size),
                f.invocations.to_string(),
                age(&f.updated_at, now),
                if f.disabled.is_some() {
                    "disabled"
                } else {
                    "ok"
                }
                .to_owned(),
            ]
        })
        .collect();
    let mut out = output::table(
        &[
            "NAME",
            "VERSION",
            "DIGEST",
            "SIZE",
            "INVOCATIONS",
            "UPDATED",
            "STATUS",
        ],
        &rows,
        &[1, 3, 4],
    );
    let disabled: Vec<String> = functions
        .iter()
        .filter_map(|f| Some(format!("  {}: {}", f.name, f.disabled.as_deref()?)))
        .collect();
    if !disabled.is_empty() {
        out.push_str("\n\nDisabled (run `flint doctor`):\n");
        out.push_str(&disabled.join("\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let list: FunctionList = serde_json::from_value(serde_json::json!({"functions": [
            {"name": "resize", "latest_version": 12, "digest": "sha256:0123456789abcdef", "versions": 12,
             "size_bytes": 2_500_000, "updated_at": "2026-11-26T09:00:00Z", "invocations": 7,
             "disabled": "its stored config does not parse"},
            {"name": "hello", "latest_version": 3, "digest": "sha256:abcdef0123456789", "versions": 3,
             "size_bytes": 12_390, "updated_at": "2026-11-26T09:55:00Z", "invocations": 42},
        ]}))
        .unwrap();
        let now = humantime::parse_rfc3339("2026-11-26T10:00:00Z").unwrap();
        assert_eq!(
            render(&list.functions, now),
            "NAME    VERSION  DIGEST            SIZE  INVOCATIONS  UPDATED  STATUS\n\
             hello         3  abcdef012345  12.1 KiB           42  5m ago   ok\n\
             resize       12  0123456789ab   2.4 MiB            7  1h ago   disabled\n\
             \n\
             Disabled (run `flint doctor`):\n  \
             resize: its stored config does not parse"
        );
    }

    #[test]
    fn empty() {
        assert_eq!(render(&[], SystemTime::now()), EMPTY);
    }
}
