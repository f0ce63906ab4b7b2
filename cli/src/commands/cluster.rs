//! Cluster mode from the command line: `flint nodes` (who serves which
//! registry version), `flint migrate` (the shared registry's schema), and
//! the wait behind `flint deploy --wait` and `flint apply --wait`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

use crate::Context;
use crate::output;

/// Flags of `flint nodes`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each row is a node that sent a heartbeat within the last hour: its address, the registry
version its memory reflects, how many versions it is behind (LAG), its state, whether it
leads (the leader alone collects garbage in the shared blob store) and the age of its
last heartbeat. A node counts as live while its heartbeats are recent; `--wait`
on deploy and apply waits for every live node.

Examples:
  flint nodes
  flint nodes --json | jq '.nodes[] | select(.lag > 0)'")]
pub struct NodesArgs {}

/// Flags of `flint migrate`.
#[derive(Debug, Args)]
#[command(after_help = "\
Run it once before starting nodes on a new or upgraded registry (the Kubernetes manifests
run it as a Job). Several runs at once are safe: one applies, the others find nothing to
do. Each migration runs in its own transaction, so a failing one changes nothing.

Examples:
  flint migrate --registry postgres://flint:secret@db:5432/flint
  FLINT_REGISTRY_URL=postgres://flint@db/flint flint migrate")]
pub struct MigrateArgs {
    /// The shared registry: a PostgreSQL URL
    #[arg(long, env = "FLINT_REGISTRY_URL", value_name = "URL")]
    pub registry: String,
    /// Longest wait for any lock (another migration, a long transaction), e.g. 10s or 1m
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub lock_timeout: humantime::Duration,
}

/// Flags of the commands that can wait for every node (deploy, apply).
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Return only once every live node serves the change (cluster mode; instant on one node)
    #[arg(long)]
    pub wait: bool,
    /// Longest wait for --wait, e.g. 30s or 2m
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration, requires = "wait")]
    pub wait_timeout: humantime::Duration,
}

fn parse_duration(text: &str) -> Result<humantime::Duration, String> {
    text.parse::<humantime::Duration>()
        .map_err(|e| format!("{e}; write a duration such as 10s, 500ms or 2m"))
}

/// The body of `GET /v1/nodes`.
#[derive(Debug, Deserialize)]
struct Nodes {
    registry_version: u64,
    registry: String,
    registry_reachable: bool,
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    address: String,
    applied_version: u64,
    lag: u64,
    state: String,
    heartbeat_age_ms: u64,
    live: bool,
    this: bool,
    leader: bool,
}

async fn nodes(ctx: &Context) -> anyhow::Result<(serde_json::Value, Nodes)> {
    let response = ctx.client.get(ctx.client.url(&["v1", "nodes"])).await?;
    let nodes =
        serde_json::from_value(response.clone()).context("unexpected node list from the server")?;
    Ok((response, nodes))
}

/// Runs `flint nodes`.
pub async fn list(ctx: &Context, _args: NodesArgs) -> anyhow::Result<()> {
    let (response, nodes) = nodes(ctx).await?;
    if ctx.json {
        return Ok(output::print_json(&response)?);
    }
    output::print(&render(&nodes))?;
    Ok(())
}

fn render(nodes: &Nodes) -> String {
    let rows: Vec<Vec<String>> = nodes
        .nodes
        .iter()
        .map(|n| {
            let health = match (n.live, n.state.as_str()) {
                (false, "draining") => "stopped".to_string(),
                (false, _) => "silent".to_string(),
                (true, state) => state.to_string(),
            };
            let role = if n.leader { "leader" } else { "" };
            vec![
                format!("{}{}", n.address, if n.this { " *" } else { "" }),
                n.id.clone(),
                n.applied_version.to_string(),
                n.lag.to_string(),
                health,
                role.to_string(),
                format!("{:.1}s", n.heartbeat_age_ms as f64 / 1000.0),
            ]
        })
        .collect();
    let mut text = output::table(
        &[
            "ADDRESS",
            "NODE",
            "APPLIED",
            "LAG",
            "STATE",
            "ROLE",
            "HEARTBEAT",
        ],
        &rows,
        &[2, 3, 6],
    );
    if nodes.registry == "embedded" {
        text.push_str("\nOne node with an embedded registry (start nodes with --registry postgres://… to run several).");
    } else if !nodes.registry_reachable {
        text.push_str("\nThe answering node (*) cannot reach the shared registry: it serves what it has, and cannot tell how the others are.");
    } else {
        text.push_str(&format!(
            "\nRegistry version {}; * marks the node that answered.",
            nodes.registry_version
        ));
    }
    text
}

/// Runs `flint migrate`.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    eprintln!(
        "Migrating the registry at {}",
        flint_gateway::store::redact(&args.registry)
    );
    let done = flint_gateway::store::migrate(&args.registry, *args.lock_timeout).await?;
    if done.from == done.to {
        println!(
            "The registry schema is at version {}: nothing to do.",
            done.to
        );
    } else {
        println!(
            "Migrated the registry schema from version {} to {}.",
            done.from, done.to
        );
    }
    Ok(())
}

/// With `--wait`, returns once every live node has applied the registry
/// version the server has now (which includes the change just made),
/// printing progress on a terminal; an error after `wait_timeout`.
pub async fn wait(ctx: &Context, args: &WaitArgs) -> anyhow::Result<()> {
    if !args.wait {
        return Ok(());
    }
    let started = Instant::now();
    let (_, first) = nodes(ctx).await?;
    anyhow::ensure!(
        first.registry_reachable,
        "the server cannot reach the shared registry, so it cannot tell when the other nodes serve the change"
    );
    let target = first.registry_version;
    let progress = std::io::stderr().is_terminal() && !ctx.json;
    let mut shown = false;
    loop {
        let (_, now) = nodes(ctx).await?;
        let live: Vec<&Node> = now.nodes.iter().filter(|n| n.live).collect();
        let behind: Vec<&Node> = live
            .iter()
            .copied()
            .filter(|n| n.applied_version < target)
            .collect();
        if shown {
            eprintln!();
            shown = false;
        }
        if behind.is_empty() {
            if !ctx.json {
                eprintln!(
                    "Every live node ({}) serves registry version {target} ({} ms).",
                    live.len(),
                    started.elapsed().as_millis()
                );
            }
            return Ok(());
        }
        if started.elapsed() > *args.wait_timeout {
            let names: Vec<String> = behind
                .iter()
                .map(|n| format!("{} (at {})", n.address, n.applied_version))
                .collect();
            anyhow::bail!(
                "{} of {} live node(s) did not reach registry version {target} within {}: {}; see `flint nodes`",
                behind.len(),
                live.len(),
                args.wait_timeout,
                names.join(", ")
            );
        }
        if progress {
            eprint!(
                "\rWaiting for {} of {} node(s) to serve registry version {target}…",
                behind.len(),
                live.len()
            );
            shown = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
