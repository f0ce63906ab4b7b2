//! `flint token create|ls|revoke`: the API tokens of a server.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

use crate::{Context, output};

/// Flags of `flint token`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  export FLINT_TOKEN=$(cat admin-token)
  flint token create ci --scope deploy --function 'orders-*' --expires 90d
  flint token ls
  flint token revoke ci")]
pub struct TokenArgs {
    /// What to do with tokens.
    #[command(subcommand)]
    pub action: TokenAction,
}

/// The token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print it once, alone on its line, on stdout.
    ///
    /// The server keeps only a hash: the token cannot be shown again. Scopes: `read` (every
    /// GET under /v1 but tokens), `invoke` (call functions whose invoke_auth is `token`),
    /// `deploy` (read, invoke, and change the functions --function matches) and `admin`
    /// (everything, including tokens and --prune). Needs an admin token.
    #[command(after_help = "\
Examples:
  flint token create ci --scope deploy --function 'orders-*'
  flint token create grafana --scope read --expires 30d
  flint token create billing --scope deploy --function billing --secret 'billing-*'
  TOKEN=$(flint token create app --scope invoke --function checkout)")]
    Create(CreateArgs),
    /// List tokens: name, scope, globs, created, expires and last used (never the secret).
    #[command(after_help = "Examples:\n  flint token ls\n  flint token ls --json")]
    Ls,
    /// Revoke a token: every request that carries it is refused from now on.
    #[command(after_help = "Examples:\n  flint token revoke ci")]
    Revoke {
        /// Name of the token to revoke
        name: String,
    },
}

/// Flags of `flint token create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Unique name of the token; the release history records it as the actor
    pub name: String,
    /// What the token may do: read, invoke, deploy or admin
    #[arg(long, value_parser = ["read", "invoke", "deploy", "admin"])]
    pub scope: String,
    /// Functions the token covers, as a glob (`orders-*`); repeatable. Without it: every function
    #[arg(long = "function", value_name = "GLOB")]
    pub functions: Vec<String>,
    /// Secrets the token may put in a function's env as `secret:NAME`, as a glob; repeatable
    #[arg(long = "secret", value_name = "GLOB")]
    pub secrets: Vec<String>,
    /// Lifetime, such as 12h, 30d or 1y; without it the token never expires
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires: Option<Duration>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write a duration such as 12h, 30d or 1y"))?;
    if duration < Duration::from_secs(1) {
        return Err("a token must live at least 1s".into());
    }
    Ok(duration)
}

const HEADER: [&str; 7] = [
    "NAME",
    "SCOPE",
    "FUNCTIONS",
    "SECRETS",
    "CREATED",
    "EXPIRES",
    "LAST USED",
];

fn row(token: &Value, now: SystemTime) -> Vec<String> {
    let globs = |key: &str, empty: &str| {
        let list: Vec<&str> = token[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if list.is_empty() {
            empty.to_owned()
        } else {
            list.join(",")
        }
    };
    let when = |key: &str, none: &str| match token[key].as_str() {
        Some(at) => output::age(at, now),
        None => none.to_owned(),
    };
    let admin = token["scope"] == "admin";
    vec![
        token["name"].as_str().unwrap_or_default().to_owned(),
        token["scope"].as_str().unwrap_or_default().to_owned(),
        globs("functions", "*"),
        globs("secrets", if admin { "*" } else { "-" }),
        when("created_at", "-"),
        match token["expires_at"].as_str() {
            Some(at) => at.to_owned(),
            None => "never".to_owned(),
        },
        when("last_used_at", "never"),
    ]
}

/// Runs `flint token`.
pub async fn run(ctx: &Context, args: TokenArgs) -> anyhow::Result<()> {
    match args.action {
        TokenAction::Create(create) => {
            let mut body = json!({
                "name": create.name,
                "scope": create.scope,
                "functions": create.functions,
                "secrets": create.secrets,
            });
            if let Some(expires) = create.expires {
                body["expires_in_secs"] = json!(expires.as_secs());
            }
            let created = ctx
                .client
                .post(ctx.client.url(&["v1", "tokens"]), &body)
                .await?;
            if ctx.json {
                return Ok(output::print_json(&created)?);
            }
            // The token alone on stdout, so that `$(flint token create ...)` captures it;
            // the rest goes to stderr.
            output::print(created["token"].as_str().unwrap_or_default())?;
            eprintln!(
                "Created token {} (scope {}{}). Store it now: it is not shown again.",
                create.name,
                create.scope,
                created["expires_at"]
                    .as_str()
                    .map_or(String::new(), |at| format!(", expires {at}"))
            );
        }
        TokenAction::Ls => {
            let list = ctx.client.get(ctx.client.url(&["v1", "tokens"])).await?;
            if ctx.json {
                return Ok(output::print_json(&list)?);
            }
            let now = SystemTime::now();
            let rows: Vec<Vec<String>> = list["tokens"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| row(t, now))
                .collect();
            if rows.is_empty() {
                output::print(
                    "No stored tokens. Create one with: flint token create NAME --scope read|invoke|deploy|admin",
                )?;
            } else {
                output::print(&output::table(&HEADER, &rows, &[]))?;
            }
        }
        TokenAction::Revoke { name } => {
            ctx.client
                .delete(ctx.client.url(&["v1", "tokens", &name]))
                .await?;
            if !ctx.json {
                output::print(&format!("Revoked token {name}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_never_show_a_secret_and_fill_defaults() {
        let token = json!({
            "name": "ci", "scope": "deploy", "functions": ["orders-*"], "secrets": [],
            "created_at": "2026-01-01T00:00:00Z", "expires_at": null, "last_used_at": null,
        });
        let row = row(&token, SystemTime::now());
        assert_eq!(&row[..4], ["ci", "deploy", "orders-*", "-"]);
        assert_eq!(&row[5..], ["never", "never"]);
        assert!(parse_duration("30d").is_ok());
        assert!(parse_duration("soon").unwrap_err().contains("30d"));
    }
}
