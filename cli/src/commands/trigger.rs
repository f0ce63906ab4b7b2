//! `flint trigger add|ls|rm`: bind functions to RabbitMQ queues.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::parse_function_name;
use crate::{Context, output};

/// Flags of `flint trigger`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint trigger add orders --queue orders --max-retries 3
  flint trigger ls
  flint trigger rm orders")]
pub struct TriggerArgs {
    /// What to do with triggers.
    #[command(subcommand)]
    pub action: TriggerAction,
}

/// The trigger subcommands.
#[derive(Debug, Subcommand)]
pub enum TriggerAction {
    /// Bind a function to a queue (replaces its binding, if any).
    ///
    /// Each message on the queue invokes the function as `POST /` with the message body
    /// and CloudEvents headers (ce-id, ce-source, ce-type, ce-time). A 2xx answer acks the
    /// message; anything else is retried after --retry-delay-ms, up to --max-retries times,
    /// then moved to the dead-letter queue. The server declares the queues if missing.
    #[command(after_help = "\
Examples:
  flint trigger add orders --queue orders
  flint trigger add orders --queue orders --concurrency 16 --max-retries 3 --dead-letter orders.failed")]
    Add(AddArgs),
    /// List every trigger binding and the broker state.
    #[command(after_help = "Examples:\n  flint trigger ls\n  flint trigger ls --json")]
    Ls,
    /// Remove a function's queue binding (the queues themselves stay).
    #[command(after_help = "Examples:\n  flint trigger rm orders")]
    Rm {
        /// Function whose trigger to remove
        #[arg(value_parser = parse_function_name)]
        name: String,
    },
}

/// Flags of `flint trigger add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Function to invoke for each message
    #[arg(value_parser = parse_function_name)]
    pub name: String,
    /// Queue to consume
    #[arg(long)]
    pub queue: String,
    /// Messages processed at once (never more than the function's max_concurrency) [server default: 8]
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Retries after the first failed attempt, then dead-letter [server default: 5]
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Delay before each retry, in milliseconds [server default: 1000]
    #[arg(long)]
    pub retry_delay_ms: Option<u64>,
    /// Dead-letter queue [server default: QUEUE.dlq]
    #[arg(long)]
    pub dead_letter: Option<String>,
}

fn row(binding: &Value) -> Vec<String> {
    let text = |key: &str| match &binding[key] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    vec![
        text("function"),
        text("queue"),
        text("concurrency"),
        text("max_retries"),
        text("retry_delay_ms"),
        text("dead_letter"),
    ]
}

const HEADER: [&str; 6] = [
    "FUNCTION",
    "QUEUE",
    "CONCURRENCY",
    "RETRIES",
    "DELAY_MS",
    "DEAD_LETTER",
];

/// Runs `flint trigger`.
pub async fn run(ctx: &Context, args: TriggerArgs) -> anyhow::Result<()> {
    match args.action {
        TriggerAction::Add(add) => {
            let mut body = json!({ "queue": add.queue });
            if let Some(v) = add.concurrency {
                body["concurrency"] = json!(v);
            }
            if let Some(v) = add.max_retries {
                body["max_retries"] = json!(v);
            }
            if let Some(v) = add.retry_delay_ms {
                body["retry_delay_ms"] = json!(v);
            }
            if let Some(v) = add.dead_letter {
                body["dead_letter"] = json!(v);
            }
            let url = ctx.client.function_url(&add.name, &["triggers"]);
            let binding = ctx
                .client
                .call(ctx.client.request(Method::PUT, url).json(&body))
                .await?;
            if ctx.json {
                output::print_json(&binding)?;
            } else {
                output::print(&format!(
                    "{} now consumes queue {} (dead letters to {})",
                    add.name,
                    binding["queue"].as_str().unwrap_or_default(),
                    binding["dead_letter"].as_str().unwrap_or_default()
                ))?;
            }
        }
        TriggerAction::Ls => {
            let list = ctx.client.get(ctx.client.url(&["v1", "triggers"])).await?;
            if ctx.json {
                return Ok(output::print_json(&list)?);
            }
            let rows: Vec<Vec<String>> = list["triggers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(row)
                .collect();
            let broker = list["broker"].as_str().unwrap_or("unknown");
            if rows.is_empty() {
                output::print(&format!(
                    "No triggers (broker: {broker}). Add one with: flint trigger add NAME --queue QUEUE"
                ))?;
            } else {
                output::print(&output::table(&HEADER, &rows, &[2, 3, 4]))?;
                output::print(&format!("broker: {broker}"))?;
            }
        }
        TriggerAction::Rm { name } => {
            ctx.client
                .delete(ctx.client.function_url(&name, &["triggers"]))
                .await?;
            if !ctx.json {
                output::print(&format!("Removed the trigger of {name}"))?;
            }
        }
    }
    Ok(())
}
