//! `flint rm NAME`: deletes a function and all its versions.

use clap::Args;

use super::parse_function_name;
use crate::{Context, output};

/// Flags of `flint rm`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint rm hello")]
pub struct RmArgs {
    /// Name of the function to delete
    #[arg(value_parser = parse_function_name)]
    pub name: String,
}

/// Runs `flint rm`.
pub async fn run(ctx: &Context, args: RmArgs) -> anyhow::Result<()> {
    let response = ctx
        .client
        .delete(ctx.client.function_url(&args.name, &[]))
        .await?;
    if ctx.json {
        // A 204 has no body: print nothing rather than a JSON the server never sent.
        if !response.is_null() {
            output::print_json(&response)?;
        }
        return Ok(());
    }
    output::print(&format!("Removed {}", args.name))?;
    Ok(())
}
