//! `flint doctor`: checks the server's stored state and repairs what it can.

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

use crate::{Context, output};

/// Flags of `flint doctor`.
#[derive(Debug, Args)]
#[command(after_help = "\
Checked: every function's registry rows (config, versions, trigger, release state), every
version's blob (present, and its sha256 equals the version's digest) and every compiled
artifact (it loads with the server's engine).

Repaired: a compiled artifact that is missing or does not load is recompiled from a good
blob, and functions that are whole again serve at once. Not repairable, and listed by
function: a row that does not parse (set a new config with `flint config NAME ...`,
redeploy or `flint rm` the function) and a blob that is gone (deploy the same file again).

Exits with status 1 while problems remain, so it can gate a deploy script.

Examples:
  flint doctor
  flint doctor --no-repair
  flint doctor --json | jq '.problems[].function'")]
pub struct DoctorArgs {
    /// Only check and report; change nothing
    #[arg(long)]
    pub no_repair: bool,
}

/// The body of `POST /v1/doctor`.
#[derive(Debug, Deserialize)]
struct Report {
    checked: u64,
    #[serde(default)]
    repaired: Vec<Repair>,
    #[serde(default)]
    problems: Vec<Problem>,
}

#[derive(Debug, Deserialize)]
struct Repair {
    function: String,
    version: Option<u64>,
    what: String,
}

#[derive(Debug, Deserialize)]
struct Problem {
    function: String,
    version: Option<u64>,
    problem: String,
}

/// Runs `flint doctor`.
pub async fn run(ctx: &Context, args: DoctorArgs) -> anyhow::Result<()> {
    let mut url = ctx.client.url(&["v1", "doctor"]);
    url.query_pairs_mut()
        .append_pair("repair", if args.no_repair { "false" } else { "true" });
    let response = ctx.client.post(url, &serde_json::Value::Null).await?;
    let report: Report = serde_json::from_value(response.clone())
        .context("unexpected doctor report from the server")?;
    if ctx.json {
        output::print_json(&response)?;
    } else {
        output::print(&render(&report))?;
    }
    match report.problems.len() {
        0 => Ok(()),
        1 => anyhow::bail!("1 problem remains"),
        n => anyhow::bail!("{n} problems remain"),
    }
}

fn target(function: &str, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("{function}@{v}"),
        None => function.to_owned(),
    }
}

fn render(report: &Report) -> String {
    let mut out = format!(
        "Checked {} function{}.",
        report.checked,
        if report.checked == 1 { "" } else { "s" }
    );
    if !report.repaired.is_empty() {
        let rows: Vec<Vec<String>> = report
            .repaired
            .iter()
            .map(|r| vec![target(&r.function, r.version), r.what.clone()])
            .collect();
        out.push_str("\n\nRepaired:\n");
        out.push_str(&output::table(&["FUNCTION", "REPAIR"], &rows, &[]));
    }
    if report.problems.is_empty() {
        out.push_str("\n\nNo problems.");
    } else {
        let rows: Vec<Vec<String>> = report
            .problems
            .iter()
            .map(|p| vec![target(&p.function, p.version), p.problem.clone()])
            .collect();
        out.push_str("\n\nProblems:\n");
        out.push_str(&output::table(&["FUNCTION", "PROBLEM"], &rows, &[]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report() {
        let report: Report = serde_json::from_value(serde_json::json!({
            "checked": 3,
            "repaired": [{"function": "c", "version": 1, "what": "recompiled"}],
            "problems": [{"function": "a", "version": null, "problem": "bad config"}],
        }))
        .unwrap();
        assert_eq!(
            render(&report),
            "Checked 3 functions.\n\n\
             Repaired:\nFUNCTION  REPAIR\nc@1       recompiled\n\n\
             Problems:\nFUNCTION  PROBLEM\na         bad config"
        );
        let clean: Report = serde_json::from_value(serde_json::json!({"checked": 1})).unwrap();
        assert_eq!(render(&clean), "Checked 1 function.\n\nNo problems.");
    }
}
