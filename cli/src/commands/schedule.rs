//! `flint schedule add|ls|rm`: run functions on cron schedules.

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use super::parse_function_name;
use crate::{Context, output};

/// Flags of `flint schedule`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint schedule add report --cron '0 9 * * 1-5' --tz Europe/Berlin --path /daily
  flint schedule add heartbeat --cron '*/10 * * * * *' --body ping
  flint schedule ls report
  flint schedule rm report 3f9a1c2b4d5e")]
pub struct ScheduleArgs {
    /// What to do with schedules.
    #[command(subcommand)]
    pub action: ScheduleAction,
}

/// The schedule subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Invoke a function on a cron schedule.
    ///
    /// The expression has five fields (minute hour day-of-month month day-of-week) or six
    /// with seconds first, read in --tz. Each tick invokes the function once (across
    /// restarts and cluster nodes) as `POST PATH` with the body and CloudEvents headers:
    /// ce-type com.flint.schedule, ce-source flint/schedules/ID, ce-id ID-UNIXTIME and
    /// ce-time (the tick). Ticks missed while the server was down are skipped, or with
    /// --catch-up once, one run fires for the most recent of them.
    #[command(after_help = "\
Cron fields (five, or six with seconds first):
  [second] minute hour day-of-month month day-of-week
  *  any   */5  every 5th   1-5  a range   1,15  a list   MON-FRI, JAN  names

Examples:
  flint schedule add cleanup --cron '*/5 * * * *'
  flint schedule add report --cron '0 9 * * MON-FRI' --tz Europe/Berlin --path /daily
  flint schedule add heartbeat --cron '*/10 * * * * *' --body ping --catch-up once")]
    Add(AddArgs),
    /// List a function's schedules, each with its next tick and its last runs.
    #[command(
        after_help = "Examples:\n  flint schedule ls report\n  flint schedule ls report --json"
    )]
    Ls {
        /// Function whose schedules to list
        #[arg(value_parser = parse_function_name)]
        name: String,
    },
    /// Remove a schedule of a function (ticks in flight finish).
    #[command(after_help = "Examples:\n  flint schedule rm report 3f9a1c2b4d5e")]
    Rm {
        /// Function the schedule belongs to
        #[arg(value_parser = parse_function_name)]
        name: String,
        /// The schedule's id (see `flint schedule ls NAME`)
        id: String,
    },
}

/// What a schedule does about ticks missed while the server was down.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CatchUp {
    /// Fire nothing for missed ticks; continue with the next one.
    Skip,
    /// Fire one run for the most recent missed tick, then continue.
    Once,
}

/// Flags of `flint schedule add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Function to invoke on each tick
    #[arg(value_parser = parse_function_name)]
    pub name: String,
    /// Cron expression: five fields, or six with seconds first (quote it)
    #[arg(long)]
    pub cron: String,
    /// IANA time zone the expression is read in [server default: UTC]
    #[arg(long)]
    pub tz: Option<String>,
    /// Path (and query) each tick calls [server default: /]
    #[arg(long)]
    pub path: Option<String>,
    /// Body each tick sends (as application/json when it is JSON, else text/plain; at most 64 KiB)
    #[arg(long)]
    pub body: Option<String>,
    /// What to do about ticks missed while the server was down [server default: skip]
    #[arg(long, value_enum)]
    pub catch_up: Option<CatchUp>,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

const HEADER: [&str; 6] = ["ID", "CRON", "TZ", "PATH", "CATCH_UP", "NEXT"];
const RUN_HEADER: [&str; 5] = ["SCHEDULED", "STARTED", "OUTCOME", "STATUS", "DURATION"];
/// Runs shown per schedule in the table (`--json` has all that are kept).
const RUNS_SHOWN: usize = 5;

fn row(schedule: &Value) -> Vec<String> {
    ["id", "cron", "tz", "path", "catch_up", "next_fire"]
        .iter()
        .map(|key| text(&schedule[*key]))
        .collect()
}

fn run_row(run: &Value) -> Vec<String> {
    let outcome = text(&run["outcome"]);
    vec![
        text(&run["scheduled_at"]),
        text(&run["started_at"]),
        if run["catch_up"] == true {
            format!("{outcome} (catch-up)")
        } else {
            outcome
        },
        text(&run["status"]),
        run["duration_ms"]
            .as_f64()
            .map_or_else(|| "-".into(), output::human_ms),
    ]
}

/// Runs `flint schedule`.
pub async fn run(ctx: &Context, args: ScheduleArgs) -> anyhow::Result<()> {
    match args.action {
        ScheduleAction::Add(add) => {
            let mut body = json!({ "cron": add.cron });
            if let Some(v) = add.tz {
                body["tz"] = json!(v);
            }
            if let Some(v) = add.path {
                body["path"] = json!(v);
            }
            if let Some(v) = add.body {
                body["body"] = json!(v);
            }
            if let Some(v) = add.catch_up {
                body["catch_up"] = json!(match v {
                    CatchUp::Skip => "skip",
                    CatchUp::Once => "once",
                });
            }
            let url = ctx.client.function_url(&add.name, &["schedules"]);
            let schedule = ctx
                .client
                .call(ctx.client.request(Method::POST, url).json(&body))
                .await?;
            if ctx.json {
                output::print_json(&schedule)?;
            } else {
                output::print(&format!(
                    "Scheduled {} ({}): `{}` in {}, next at {}",
                    add.name,
                    text(&schedule["id"]),
                    text(&schedule["cron"]),
                    text(&schedule["tz"]),
                    text(&schedule["next_fire"]),
                ))?;
            }
        }
        ScheduleAction::Ls { name } => {
            let list = ctx
                .client
                .get(ctx.client.function_url(&name, &["schedules"]))
                .await?;
            if ctx.json {
                return Ok(output::print_json(&list)?);
            }
            let schedules = list["schedules"].as_array().cloned().unwrap_or_default();
            if schedules.is_empty() {
                output::print(&format!(
                    "{name} has no schedules. Add one with: flint schedule add {name} --cron '*/5 * * * *'"
                ))?;
                return Ok(());
            }
            let rows: Vec<Vec<String>> = schedules.iter().map(row).collect();
            output::print(&output::table(&HEADER, &rows, &[]))?;
            for schedule in &schedules {
                let runs: Vec<Vec<String>> = schedule["runs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(RUNS_SHOWN)
                    .map(run_row)
                    .collect();
                let id = text(&schedule["id"]);
                if runs.is_empty() {
                    output::print(&format!("\nLast runs of {id}: none yet"))?;
                } else {
                    output::print(&format!("\nLast runs of {id} (newest first):"))?;
                    output::print(&output::table(&RUN_HEADER, &runs, &[3, 4]))?;
                }
            }
        }
        ScheduleAction::Rm { name, id } => {
            ctx.client
                .delete(ctx.client.function_url(&name, &["schedules", &id]))
                .await?;
            if !ctx.json {
                output::print(&format!("Removed schedule {id} of {name}"))?;
            }
        }
    }
    Ok(())
}
