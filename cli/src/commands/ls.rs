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
    latest_version: u64,
    digest: String,
    size_bytes: u64,
    updated_at: String,
    #[serde(default)]
    invocations: u64,
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
        .into_iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.latest_version.to_string(),
                short_hex(&f.digest).to_owned(),
                human_size(f.size_bytes),
                f.invocations.to_string(),
                age(&f.updated_at, now),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME",
            "VERSION",
            "DIGEST",
            "SIZE",
            "INVOCATIONS",
            "UPDATED",
        ],
        &rows,
        &[1, 3, 4],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let list: FunctionList = serde_json::from_value(serde_json::json!({"functions": [
            {"name": "resize", "latest_version": 12, "digest": "sha256:0123456789abcdef", "versions": 12,
             "size_bytes": 2_500_000, "updated_at": "2026-11-26T09:00:00Z", "invocations": 7},
            {"name": "hello", "latest_version": 3, "digest": "sha256:abcdef0123456789", "versions": 3,
             "size_bytes": 12_390, "updated_at": "2026-11-26T09:55:00Z", "invocations": 42},
        ]}))
        .unwrap();
        let now = humantime::parse_rfc3339("2026-11-26T10:00:00Z").unwrap();
        assert_eq!(
            render(&list.functions, now),
            "NAME    VERSION  DIGEST            SIZE  INVOCATIONS  UPDATED\n\
             hello         3  abcdef012345  12.1 KiB           42  5m ago\n\
             resize       12  0123456789ab   2.4 MiB            7  1h ago"
        );
    }

    #[test]
    fn empty() {
        assert_eq!(render(&[], SystemTime::now()), EMPTY);
    }
}
