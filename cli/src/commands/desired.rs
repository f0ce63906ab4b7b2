//! `flint plan` and `flint apply`: make a server match a manifest.
//!
//! Both read the manifest, apply the environment's overlay, and build or
//! read every component locally (the same bytes for every environment).
//! `plan` asks the server what would change; `apply` uploads the components
//! the server lacks, then has the server validate and apply the whole
//! desired state at once.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use flint_spec::desired::DesiredState;
use flint_spec::manifest::{LoadedComponents, MANIFEST_FILE, Manifest, load_components};
use serde_json::Value;

use crate::Context;
use crate::output::{self, human_size, short_digest};

/// Flags shared by `flint plan` and `flint apply`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The manifest
    #[arg(long, short = 'f', default_value = MANIFEST_FILE, value_name = "FILE")]
    pub file: PathBuf,
    /// The environment whose overlay applies ([env.NAME] in the manifest); none: the base
    #[arg(long, env = "FLINT_ENV", value_name = "NAME")]
    pub env: Option<String>,
    /// Also delete functions on the server that the manifest does not name
    #[arg(long)]
    pub prune: bool,
}

/// Flags of `flint plan`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint plan
  flint plan -f deploy/flint.toml --env prod
  flint plan --env staging --prune --json | jq '.changes[].action'")]
pub struct PlanArgs {
    #[command(flatten)]
    manifest: ManifestArgs,
}

/// Flags of `flint apply`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint apply --env staging
  flint apply -f deploy/flint.toml --env prod --prune
  flint apply --env prod --json | jq .changed
  flint apply --env prod --wait     # return once every node of a cluster serves it")]
pub struct ApplyArgs {
    #[command(flatten)]
    manifest: ManifestArgs,
    #[command(flatten)]
    wait: super::cluster::WaitArgs,
}

/// Reads the manifest, resolves the environment and builds or reads every
/// component.
fn desired(args: &ManifestArgs) -> anyhow::Result<(DesiredState, LoadedComponents)> {
    let manifest = Manifest::load(&args.file)?;
    let resolved = manifest.resolve(args.env.as_deref())?;
    let components = load_components(&resolved, &mut |line| eprintln!("{line}"))?;
    Ok((resolved.desired(&components), components))
}

fn query(prune: bool) -> &'static str {
    if prune { "prune=true" } else { "prune=false" }
}

async fn post_plan(
    ctx: &Context,
    path: &str,
    state: &DesiredState,
    prune: bool,
) -> anyhow::Result<Value> {
    let mut url = ctx.client.url(&["v1", path]);
    url.set_query(Some(query(prune)));
    Ok(ctx.client.post(url, &serde_json::to_value(state)?).await?)
}

/// Runs `flint plan`.
pub async fn plan(ctx: &Context, args: PlanArgs) -> anyhow::Result<()> {
    let args = args.manifest;
    let (state, _) = desired(&args)?;
    let plan = post_plan(ctx, "plan", &state, args.prune).await?;
    if ctx.json {
        return Ok(output::print_json(&plan)?);
    }
    print_changes(&plan, &args, false)?;
    if let Some(missing) = plan["missing_components"]
        .as_array()
        .filter(|m| !m.is_empty())
    {
        eprintln!(
            "{} component(s) are not on the server yet; `flint apply` uploads them.",
            missing.len()
        );
    }
    Ok(())
}

/// Runs `flint apply`.
pub async fn apply(ctx: &Context, args: ApplyArgs) -> anyhow::Result<()> {
    let wait = args.wait;
    let args = args.manifest;
    let (state, components) = desired(&args)?;
    let applied = upload_and_apply(ctx, &state, &components, args.prune).await?;
    super::cluster::wait(ctx, &wait).await?;
    if ctx.json {
        return Ok(output::print_json(&applied)?);
    }
    print_changes(&applied, &args, true)
}

/// Uploads the components the server lacks, then has it apply `state`;
/// returns what it did.
pub(crate) async fn upload_and_apply(
    ctx: &Context,
    state: &DesiredState,
    components: &LoadedComponents,
    prune: bool,
) -> anyhow::Result<Value> {
    let plan = post_plan(ctx, "plan", state, prune).await?;
    let missing: Vec<&str> = plan["missing_components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for digest in missing {
        let file = components
            .files
            .get(digest)
            .with_context(|| format!("the server lacks {digest}, a digest named in the manifest; upload it with `flint deploy` or give the component's path"))?;
        let bytes = tokio::fs::read(file)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        eprintln!(
            "Uploading {} ({}, {})",
            file.display(),
            short_digest(digest),
            human_size(bytes.len() as u64)
        );
        ctx.client
            .put_bytes(
                ctx.client.url(&["v1", "components"]),
                bytes,
                "application/wasm",
            )
            .await?;
    }
    post_plan(ctx, "apply", state, prune).await
}

fn print_changes(plan: &Value, args: &ManifestArgs, done: bool) -> anyhow::Result<()> {
    let target = match &args.env {
        Some(env) => format!("{} (env {env})", args.file.display()),
        None => args.file.display().to_string(),
    };
    let changes = plan["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        output::print(&format!("No changes: the server matches {target}."))?;
    } else {
        let rows: Vec<Vec<String>> = changes
            .iter()
            .map(|c| {
                ["function", "action", "detail"]
                    .iter()
                    .map(|k| c[k].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .collect();
        output::print(&output::table(
            &["FUNCTION", "ACTION", "DETAIL"],
            &rows,
            &[],
        ))?;
        let verb = if done { "Applied" } else { "Would apply" };
        eprintln!("{verb} {} change(s) for {target}.", changes.len());
    }
    for note in plan["notes"].as_array().into_iter().flatten() {
        eprintln!("note: {}", note.as_str().unwrap_or_default());
    }
    Ok(())
}
