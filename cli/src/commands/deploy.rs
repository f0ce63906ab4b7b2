//! `flint deploy NAME FILE.wasm`: uploads a component (or a WAGI module) as
//! the function's new latest version.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

use super::parse_function_name;
use crate::Context;
use crate::output::{self, human_ms, human_size, short_digest};

/// The content type of an upload: the body is the component's bytes as they are.
const WASM_CONTENT_TYPE: &str = "application/wasm";

/// Flags of `flint deploy`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cargo build --target wasm32-wasip2 --release
  flint deploy hello target/wasm32-wasip2/release/hello.wasm
  flint deploy report report.wasm --kind wagi   # a WASI 0.1 command module, run as CGI
  flint deploy api api.wasm --kind http-p3      # a WASI 0.3 component
  flint deploy hello hello.wasm --server http://flint.internal:8080
  flint deploy hello hello.wasm --json | jq .version
  flint deploy hello hello.wasm --wait      # return once every node of a cluster serves it")]
pub struct DeployArgs {
    /// Name of the function; created on its first deploy
    #[arg(value_parser = parse_function_name)]
    pub name: String,
    /// The file to upload: a wasi:http component (as built for wasm32-wasip2), or a WASI 0.1
    /// command module with `_start` (wasm32-wasip1, C with wasi-libc, TinyGo ...) to run as CGI
    #[arg(value_name = "FILE.wasm")]
    pub file: PathBuf,
    /// What the file must be: `http` (a wasi:http 0.2 component), `http-p3` (a wasi:http 0.3
    /// component) or `wagi` (a command module run as CGI). Detected from the file when left
    /// out; given, another kind is refused
    #[arg(long, value_name = "KIND", value_parser = ["http", "http-p3", "wagi"])]
    pub kind: Option<String>,
    /// Waiting for every node of a cluster.
    #[command(flatten)]
    pub wait: super::cluster::WaitArgs,
}

/// The server's answer to an upload.
#[derive(Debug, Deserialize)]
struct Deployed {
    name: String,
    version: u64,
    digest: String,
    /// False when the bytes were those of the latest version already.
    created: bool,
    size_bytes: u64,
    #[serde(default)]
    compile_ms: Option<f64>,
    /// `http`, `http-p3` or `wagi`.
    #[serde(default)]
    kind: Option<String>,
}

/// Runs `flint deploy`.
pub async fn run(ctx: &Context, args: DeployArgs) -> anyhow::Result<()> {
    let bytes = tokio::fs::read(&args.file)
        .await
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    eprintln!(
        "Uploading {} ({}) to {}",
        args.file.display(),
        human_size(bytes.len() as u64),
        ctx.client.server()
    );
    let mut url = ctx.client.function_url(&args.name, &[]);
    if let Some(kind) = &args.kind {
        url.query_pairs_mut().append_pair("kind", kind);
    }
    let response = ctx.client.put_bytes(url, bytes, WASM_CONTENT_TYPE).await?;
    super::cluster::wait(ctx, &args.wait).await?;
    if ctx.json {
        output::print_json(&response)?;
        return Ok(());
    }
    let deployed: Deployed =
        serde_json::from_value(response).context("unexpected response to the upload")?;
    let invoke_url = ctx.client.url(&["fn", &deployed.name, ""]);
    output::print(&format!(
        "{}\nInvoke it: curl {invoke_url}",
        summary(&deployed)
    ))?;
    Ok(())
}

fn summary(deployed: &Deployed) -> String {
    if !deployed.created {
        return format!(
            "{} is already at version {} (same digest); nothing to do",
            deployed.name, deployed.version
        );
    }
    let mut details = vec![
        short_digest(&deployed.digest),
        human_size(deployed.size_bytes),
    ];
    match deployed.kind.as_deref() {
        Some("wagi") => details.push("WAGI module".into()),
        Some("http-p3") => details.push("WASI 0.3 component".into()),
        _ => {}
    }
    if let Some(ms) = deployed.compile_ms {
        details.push(format!("compiled in {}", human_ms(ms)));
    }
    format!(
        "Deployed {} version {} ({})",
        deployed.name,
        deployed.version,
        details.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployed(created: bool) -> Deployed {
        serde_json::from_value(serde_json::json!({
            "name": "hello",
            "version": 3,
            "digest": "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
            "created": created,
            "size_bytes": 12_390,
            "compile_ms": 120.5,
            "kind": "http",
        }))
        .unwrap()
    }

    #[test]
    fn new_version() {
        assert_eq!(
            summary(&deployed(true)),
            "Deployed hello version 3 (sha256:abcdef012345…, 12.1 KiB, compiled in 120 ms)"
        );
    }

    #[test]
    fn a_wagi_module_says_so() {
        let mut wagi = deployed(true);
        wagi.kind = Some("wagi".into());
        assert_eq!(
            summary(&wagi),
            "Deployed hello version 3 (sha256:abcdef012345…, 12.1 KiB, WAGI module, compiled in 120 ms)"
        );
    }

    #[test]
    fn same_bytes_again() {
        assert_eq!(
            summary(&deployed(false)),
            "hello is already at version 3 (same digest); nothing to do"
        );
    }
}
