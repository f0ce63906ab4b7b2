//! Queue-trigger throughput: messages per second through Flint (a trivial
//! function behind a trigger) beside a bare lapin consumer that only acks
//! (the broker's ceiling), on the same broker in one run, alternating A B.
//!
//! ```sh
//! cargo build --release -p flint-cli
//! cargo run --release -p flint-benches --bin queue_throughput -- --messages 20000 --concurrency 32
//! ```
//!
//! Messages are published before the timed part; each side's clock runs from
//! the moment it starts consuming until its last ack. Needs RabbitMQ on
//! 127.0.0.1:5672 (guest/guest); queues are unique per run and deleted after.

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Command line.
#[derive(Parser)]
struct Args {
    /// Messages per run
    #[arg(long, default_value_t = 20_000)]
    messages: u32,
    /// Consumer prefetch / trigger concurrency
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// Rounds of (bare lapin, Flint)
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// RabbitMQ URL
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// The flint binary (default: next to this one; build it with `cargo build --release -p flint-cli`)
    #[arg(long)]
    flint: Option<PathBuf>,
    /// Give up on a run after this many seconds
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("flint-bench.{prefix}.{}.{nanos}", std::process::id())
}

async fn declare(channel: &Channel, queue: &str) -> anyhow::Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    Ok(())
}

/// Publishes `n` small persistent messages, confirmed in batches.
async fn fill(channel: &Channel, queue: &str, n: u32) -> anyhow::Result<()> {
    declare(channel, queue).await?;
    for batch in 0..n.div_ceil(1000) {
        let mut confirms = Vec::with_capacity(1000);
        for i in batch * 1000..((batch + 1) * 1000).min(n) {
            let props = BasicProperties::default()
                .with_message_id(format!("m-{i}").into())
                .with_delivery_mode(2);
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    b"{}",
                    props,
                )
                .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            if !confirm.await?.is_ack() {
                bail!("the broker refused a message");
            }
        }
    }
    Ok(())
}

/// The ceiling: a consumer that only acks.
async fn bare(
    connection: &Connection,
    queue: &str,
    n: u32,
    prefetch: u32,
) -> anyhow::Result<Duration> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch as u16, BasicQosOptions::default())
        .await?;
    let start = Instant::now();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // Acks run concurrently, as Flint's do: a serial `ack().await` per
    // message would measure round trips, not the broker's ceiling.
    let mut acks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let delivery = consumer.next().await.context("consumer ended")??;
        acks.spawn(async move { delivery.ack(BasicAckOptions::default()).await });
    }
    while let Some(ack) = acks.join_next().await {
        ack??;
    }
    let elapsed = start.elapsed();
    channel.close(200, "done".into()).await?;
    Ok(elapsed)
}

fn start_flint(
    flint: &PathBuf,
    dir: &std::path::Path,
    amqp_url: &str,
) -> anyhow::Result<(Server, String)> {
    let mut child = Command::new(flint)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--amqp-url",
            amqp_url,
            "--data-dir",
        ])
        .arg(dir)
        .env("FLINT_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", flint.display()))?;
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(i) = line.find("listening on ") {
            return Ok((server, line[i + "listening on ".len()..].trim().to_string()));
        }
    }
    bail!("flint serve exited before listening")
}

async fn acked(http: &reqwest::Client, url: &str, queue: &str) -> anyhow::Result<u64> {
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let needle =
        format!(r#"flint_messages_total{{function="bench",queue="{queue}",outcome="acked"}} "#);
    Ok(metrics
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Flint: `hello` behind a trigger; timed from binding to the last ack.
async fn flint(args: &Args, flint: &PathBuf, queue: &str) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let (_server, url) = start_flint(flint, dir.path(), &args.amqp_url)?;
    let http = reqwest::Client::new();
    let wasm = std::fs::read(flint_test_artifacts::HELLO)?;
    let deployed = http
        .put(format!("{url}/v1/functions/bench"))
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await?;
    if !deployed.status().is_success() {
        bail!("deploy failed: {}", deployed.text().await?);
    }
    let config = serde_json::json!({"max_concurrency": args.concurrency.max(64)});
    http.patch(format!("{url}/v1/functions/bench/config"))
        .json(&config)
        .send()
        .await?;
    let start = Instant::now();
    let trigger = serde_json::json!({"queue": queue, "concurrency": args.concurrency});
    let bound = http
        .put(format!("{url}/v1/functions/bench/triggers"))
        .json(&trigger)
        .send()
        .await?;
    if !bound.status().is_success() {
        bail!("trigger failed: {}", bound.text().await?);
    }
    let deadline = start + Duration::from_secs(args.timeout_secs);
    while acked(&http, &url, queue).await? < u64::from(args.messages) {
        if Instant::now() > deadline {
            bail!(
                "Flint did not ack {} messages within {} s",
                args.messages,
                args.timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(start.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let flint_bin = match &args.flint {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("flint"),
    };
    if !flint_bin.is_file() {
        bail!(
            "{} not found; build it with `cargo build --release -p flint-cli` or pass --flint",
            flint_bin.display()
        );
    }
    let connection = Connection::connect(&args.amqp_url, ConnectionProperties::default())
        .await
        .context("RabbitMQ must run on 127.0.0.1:5672 (rabbitmq-server -detached)")?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let rate = |d: Duration| f64::from(args.messages) / d.as_secs_f64();
    let (mut bare_rates, mut flint_rates) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let q = unique("bare");
        fill(&channel, &q, args.messages).await?;
        let d = bare(&connection, &q, args.messages, args.concurrency).await?;
        channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        bare_rates.push(rate(d));
        eprintln!("round {round}: bare lapin consumer {:>9.0} msg/s", rate(d));

        let q = unique("flint");
        fill(&channel, &q, args.messages).await?;
        let d = flint(&args, &flint_bin, &q).await?;
        for name in [q.clone(), format!("{q}.retry"), format!("{q}.dlq")] {
            channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        flint_rates.push(rate(d));
        eprintln!("round {round}: flint (hello)        {:>9.0} msg/s", rate(d));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, f) = (median(&mut bare_rates), median(&mut flint_rates));
    println!("| consumer | msg/s (median of {}) |", args.rounds);
    println!("| --- | --- |");
    println!("| bare lapin consumer, ack only (ceiling) | {b:.0} |");
    println!("| Flint: hello behind a trigger | {f:.0} |");
    println!("| ratio Flint / ceiling | {:.2} |", f / b);
    println!(
        "\n{} persistent messages, prefetch/concurrency {}, RabbitMQ on 127.0.0.1, {} cores",
        args.messages,
        args.concurrency,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}
