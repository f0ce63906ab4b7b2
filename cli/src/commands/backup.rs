//! `flint backup FILE` and `flint restore FILE --data-dir DIR`: a consistent
//! snapshot of a running server (the registry through SQLite's online
//! backup, plus every component), and bringing it back into a data dir.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;

use crate::client::{ApiError, ClientError};
use crate::{Context, output};

/// Flags of `flint backup`.
#[derive(Debug, Args)]
#[command(after_help = "\
The server keeps serving while the backup is taken; changes wait until it is
written. Compiled artifacts are not included: a restored server rebuilds them
from the components.

Examples:
  flint backup flint-backup.tar
  flint --server http://10.0.0.5:8080 backup /backups/flint-$(date +%F).tar")]
pub struct BackupArgs {
    /// Where to write the archive (replaced if it exists)
    pub file: PathBuf,
}

/// Flags of `flint restore`.
#[derive(Debug, Args)]
#[command(after_help = "\
Restores into a data dir that holds no registry yet, checking every
component against its digest; then start the server on it:

Examples:
  flint restore flint-backup.tar --data-dir flint-data
  flint serve --data-dir flint-data")]
pub struct RestoreArgs {
    /// The archive `flint backup` wrote
    pub file: PathBuf,
    /// The data dir to restore into (created if missing; must hold no registry)
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// Runs `flint backup`: streams the server's archive into `FILE` (through a
/// temporary file, renamed when complete).
pub async fn backup(ctx: &Context, args: BackupArgs) -> anyhow::Result<()> {
    let url = ctx.client.url(&["v1", "backup"]);
    let response = ctx
        .client
        .send(ctx.client.request(Method::GET, url))
        .await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        return Err(match ApiError::from_body(status, &body) {
            Some(api) => ClientError::Api(api).into(),
            None => anyhow::anyhow!("the server answered {status} to GET /v1/backup"),
        });
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (functions, blobs) = (
        header("x-flint-backup-functions"),
        header("x-flint-backup-blobs"),
    );
    let partial = args.file.with_extension("partial");
    let mut out = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let mut stream = response.bytes_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the backup stream broke off; nothing was written")?;
        out.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    out.sync_all()?;
    std::fs::rename(&partial, &args.file)
        .with_context(|| format!("cannot write {}", args.file.display()))?;
    if ctx.json {
        output::print_json(&json!({
            "file": args.file, "functions": functions, "components": blobs, "bytes": written,
        }))?;
        return Ok(());
    }
    output::print(&format!(
        "Backed up {functions} function(s) and {blobs} component(s) to {} ({written} bytes)",
        args.file.display()
    ))?;
    Ok(())
}

/// Runs `flint restore` (local: no server is involved).
pub fn restore(json: bool, args: RestoreArgs) -> anyhow::Result<()> {
    let restored = flint_gateway::store::archive::restore(&args.file, &args.data_dir)?;
    if json {
        output::print_json(&json!({
            "data_dir": args.data_dir, "components": restored.blobs, "bytes": restored.bytes,
        }))?;
        return Ok(());
    }
    output::print(&format!(
        "Restored {} component(s) and the registry into {}; start it with `flint serve --data-dir {}`",
        restored.blobs,
        args.data_dir.display(),
        args.data_dir.display()
    ))?;
    Ok(())
}
