//! `flint logs NAME`: prints the stdout and stderr lines a function wrote, and with
//! `--follow` keeps polling for new ones.
//!
//! Every line has a sequence number; following asks for the lines after the largest one
//! seen (`?after=SEQ`), so none is printed twice. Polling, rather than a streaming
//! connection, keeps the server side a plain request/response endpoint.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use super::parse_function_name;
use crate::{Context, output};

/// How many recent lines `flint logs` prints unless `--limit` says otherwise.
pub const DEFAULT_LOG_LIMIT: u32 = 100;

/// How often `flint logs --follow` asks the server for new lines.
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// How many lines `flint logs --follow` asks for in each poll after the first: generous,
/// so that a burst of output between two polls is not cut to `--limit`.
pub const FOLLOW_PAGE_LIMIT: u32 = 1000;

/// Flags of `flint logs`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each line shows: TIME  VERSION  REQUEST-ID  STREAM  TEXT

Examples:
  flint logs hello
  flint logs hello --limit 20
  flint logs hello --follow
  flint logs hello --json | jq -r '.lines[] | select(.stream == \"stderr\") | .line'
  flint logs hello --follow --json        one JSON object per line, as they arrive")]
pub struct LogsArgs {
    /// Name of the function
    #[arg(value_parser = parse_function_name)]
    pub name: String,

    /// How many of the most recent lines to print
    #[arg(short = 'n', long, value_name = "N", default_value_t = DEFAULT_LOG_LIMIT)]
    pub limit: u32,

    /// Keep printing new lines as they arrive, until Ctrl-C
    ///
    /// With --json, prints one compact JSON object per log line (newline-delimited JSON)
    /// instead of the server's responses.
    #[arg(short, long)]
    pub follow: bool,
}

/// The body of `GET /v1/functions/NAME/logs`.
#[derive(Debug, Deserialize)]
struct LogPage {
    lines: Vec<Value>,
}

/// One captured line.
#[derive(Debug, Deserialize)]
pub(crate) struct LogLine {
    pub(crate) seq: u64,
    pub(crate) time: String,
    version: u64,
    request_id: String,
    stream: String,
    line: String,
}

/// Runs `flint logs`.
pub async fn run(ctx: &Context, args: LogsArgs) -> anyhow::Result<()> {
    if !args.follow {
        let response = fetch(ctx, &args.name, args.limit, None).await?;
        if ctx.json {
            output::print_json(&response)?;
            return Ok(());
        }
        let lines = parse_page(response)?;
        print_lines(ctx, &lines)?;
        return Ok(());
    }
    tokio::select! {
        result = follow(ctx, &args) => result,
        // Ctrl-C is how following ends: not an error.
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

async fn follow(ctx: &Context, args: &LogsArgs) -> anyhow::Result<()> {
    // First the last `--limit` lines, as without --follow; then everything new.
    let mut after = None;
    let mut limit = args.limit;
    loop {
        let lines = parse_page(fetch(ctx, &args.name, limit, after).await?)?;
        print_lines(ctx, &lines)?;
        // A full page of new lines means more may be waiting: ask again at once. (The
        // first page is the most recent lines, full or not.)
        let more_waiting = after.is_some() && lines.len() >= limit as usize;
        after = lines.iter().map(|(line, _)| line.seq).max().or(after);
        if after.is_some() {
            limit = FOLLOW_PAGE_LIMIT;
        }
        if !more_waiting {
            tokio::time::sleep(FOLLOW_INTERVAL).await;
        }
    }
}

pub(crate) async fn fetch(
    ctx: &Context,
    name: &str,
    limit: u32,
    after: Option<u64>,
) -> anyhow::Result<Value> {
    let mut url = ctx.client.function_url(name, &["logs"]);
    url.query_pairs_mut()
        .append_pair("limit", &limit.to_string());
    if let Some(after) = after {
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
    }
    Ok(ctx.client.get(url).await?)
}

/// The lines of a page, oldest first, each with the JSON it came from (for `--json`).
pub(crate) fn parse_page(response: Value) -> anyhow::Result<Vec<(LogLine, Value)>> {
    let page: LogPage =
        serde_json::from_value(response).context("unexpected log lines from the server")?;
    let mut lines = page
        .lines
        .into_iter()
        .map(|raw| {
            let line = LogLine::deserialize(&raw)?;
            Ok((line, raw))
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .context("unexpected log line from the server")?;
    lines.sort_by_key(|(line, _)| line.seq);
    Ok(lines)
}

fn print_lines(ctx: &Context, lines: &[(LogLine, Value)]) -> anyhow::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = lines
        .iter()
        .map(|(line, raw)| {
            if ctx.json {
                raw.to_string()
            } else {
                format_line(line)
            }
        })
        .collect();
    output::print(&text.join("\n"))?;
    Ok(())
}

/// `TIME  v3  REQUEST-ID  STREAM  TEXT`, with control characters in the text escaped so
/// that a function cannot drive the terminal of whoever reads its logs.
pub(crate) fn format_line(line: &LogLine) -> String {
    let text: String = line
        .line
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    format!(
        "{}  v{}  {}  {}  {text}",
        line.time, line.version, line.request_id, line.stream
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_are_sorted_and_formatted() {
        let page = json!({"lines": [
            {"seq": 18, "time": "2026-11-26T10:00:00.200Z", "version": 3,
             "request_id": "r-00000000000b", "stream": "stderr", "line": "oops\u{1b}[2J"},
            {"seq": 17, "time": "2026-11-26T10:00:00.123Z", "version": 3,
             "request_id": "r-00000000000a", "stream": "stdout", "line": "hello\tworld"},
        ]});
        let lines = parse_page(page).unwrap();
        let text: Vec<_> = lines.iter().map(|(line, _)| format_line(line)).collect();
        assert_eq!(
            text,
            [
                "2026-11-26T10:00:00.123Z  v3  r-00000000000a  stdout  hello\tworld",
                "2026-11-26T10:00:00.200Z  v3  r-00000000000b  stderr  oops\\u{1b}[2J",
            ]
        );
        assert_eq!(lines[0].1["seq"], 17);
    }

    #[test]
    fn empty_page() {
        assert!(parse_page(json!({"lines": []})).unwrap().is_empty());
        assert!(parse_page(json!({"nope": 1})).is_err());
    }
}
