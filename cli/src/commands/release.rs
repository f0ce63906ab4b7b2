//! Releases: `flint alias`, `flint release`, `flint rollback`, `flint canary`,
//! `flint shadow` and `flint history`.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::parse_function_name;
use crate::{Context, output};

/// Flags of `flint alias`.
#[derive(Debug, Args)]
#[command(after_help = "\\
Examples:
  flint alias set hello prod 3
  flint alias set hello prod 3=90 4=10 --sticky-header x-user
  flint alias set hello prod 3 --rule x-beta=1:4
  flint alias ls hello
  flint alias rm hello staging")]
pub struct AliasArgs {
    /// What to do with aliases.
    #[command(subcommand)]
    pub action: AliasAction,
}

/// The alias subcommands.
#[derive(Debug, Subcommand)]
pub enum AliasAction {
    /// Point an alias at a version (`3`) or a weighted split (`3=90 4=10`).
    Set {
        /// Function
        #[arg(value_parser = parse_function_name)]
        name: String,
        /// Alias name (not all digits, not `latest`)
        alias: String,
        /// `VERSION` or several `VERSION=PERCENT` summing to 100
        #[arg(required = true)]
        targets: Vec<String>,
        /// Keep each caller on one version of a split by this header's value
        #[arg(long, conflicts_with = "sticky_cookie")]
        sticky_header: Option<String>,
        /// Keep each caller on one version of a split by this cookie's value
        #[arg(long)]
        sticky_cookie: Option<String>,
        /// Send requests with HEADER=VALUE to VERSION first: `x-beta=1:4`
        #[arg(long = "rule", value_name = "HEADER=VALUE:VERSION")]
        rules: Vec<String>,
        /// Make plain calls (/fn/NAME/) follow this alias
        #[arg(long)]
        default: bool,
    },
    /// List a function's aliases (and which one plain calls follow).
    Ls {
        /// Function
        #[arg(value_parser = parse_function_name)]
        name: String,
    },
    /// Remove an alias.
    Rm {
        /// Function
        #[arg(value_parser = parse_function_name)]
        name: String,
        /// Alias name
        alias: String,
    },
}

fn parse_routes(targets: &[String]) -> anyhow::Result<Value> {
    if let [single] = targets
        && !single.contains('=')
    {
        let version: u32 = single
            .parse()
            .with_context(|| format!("`{single}` is not a version number"))?;
        return Ok(json!([{ "version": version, "weight": 100 }]));
    }
    let routes = targets
        .iter()
        .map(|t| {
            let (v, w) = t
                .split_once('=')
                .with_context(|| format!("`{t}`: write VERSION=PERCENT, e.g. 3=90"))?;
            let version: u32 = v
                .parse()
                .with_context(|| format!("`{v}` is not a version number"))?;
            let weight: u32 = w
                .trim_end_matches('%')
                .parse()
                .with_context(|| format!("`{w}` is not a percentage"))?;
            Ok(json!({ "version": version, "weight": weight }))
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;
    Ok(Value::Array(routes))
}

fn parse_rule(rule: &str) -> anyhow::Result<Value> {
    let (cond, version) = rule
        .rsplit_once(':')
        .context("write a rule as HEADER=VALUE:VERSION")?;
    let (header, value) = cond
        .split_once('=')
        .context("write a rule as HEADER=VALUE:VERSION")?;
    let version: u32 = version
        .parse()
        .with_context(|| format!("`{version}` is not a version number"))?;
    Ok(json!({ "header": header, "value": value, "version": version }))
}

fn describe(target: &Value) -> String {
    let routes: Vec<String> = target["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| match r["weight"].as_u64() {
            Some(100) => format!("v{}", r["version"]),
            _ => format!("v{}={}%", r["version"], r["weight"]),
        })
        .collect();
    let mut text = routes.join(" ");
    if let Some(sticky) = target["sticky"].as_object() {
        for (kind, key) in sticky {
            text.push_str(&format!(
                " (sticky on {kind} {})",
                key.as_str().unwrap_or_default()
            ));
        }
    }
    for rule in target["rules"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            " [{}={} -> v{}]",
            rule["header"].as_str().unwrap_or_default(),
            rule["value"].as_str().unwrap_or_default(),
            rule["version"]
        ));
    }
    text
}

fn print_aliases(ctx: &Context, aliases: &Value) -> anyhow::Result<()> {
    if ctx.json {
        return Ok(output::print_json(aliases)?);
    }
    let default = aliases["default"].as_str().unwrap_or("latest");
    let rows: Vec<Vec<String>> = aliases["aliases"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, target)| {
            let mark = if name == default { "*" } else { "" };
            vec![format!("{name}{mark}"), describe(target)]
        })
        .collect();
    output::print(&output::table(&["ALIAS", "TARGET"], &rows, &[]))?;
    output::print(&format!("* plain calls (/fn/NAME/) follow `{default}`"))?;
    Ok(())
}

/// Runs `flint alias`.
pub async fn alias(ctx: &Context, args: AliasArgs) -> anyhow::Result<()> {
    match args.action {
        AliasAction::Set {
            name,
            alias,
            targets,
            sticky_header,
            sticky_cookie,
            rules,
            default,
        } => {
            let mut body = json!({ "routes": parse_routes(&targets)?, "default": default });
            if let Some(h) = sticky_header {
                body["sticky"] = json!({ "header": h });
            }
            if let Some(c) = sticky_cookie {
                body["sticky"] = json!({ "cookie": c });
            }
            body["rules"] = Value::Array(
                rules
                    .iter()
                    .map(|r| parse_rule(r))
                    .collect::<anyhow::Result<_>>()?,
            );
            let url = ctx.client.function_url(&name, &["aliases", &alias]);
            let aliases = ctx
                .client
                .call(ctx.client.request(Method::PUT, url).json(&body))
                .await?;
            print_aliases(ctx, &aliases)
        }
        AliasAction::Ls { name } => {
            let aliases = ctx
                .client
                .get(ctx.client.function_url(&name, &["aliases"]))
                .await?;
            print_aliases(ctx, &aliases)
        }
        AliasAction::Rm { name, alias } => {
            ctx.client
                .delete(ctx.client.function_url(&name, &["aliases", &alias]))
                .await?;
            if !ctx.json {
                output::print(&format!("Removed alias {alias} of {name}"))?;
            }
            Ok(())
        }
    }
}

/// Flags of `flint release`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  flint release hello --to 4\n  flint release hello --to 4 --alias prod --reason 'fix #12'"
)]
pub struct ReleaseArgs {
    /// Function
    #[arg(value_parser = parse_function_name)]
    pub name: String,
    /// Version to release
    #[arg(long)]
    pub to: u32,
    /// Alias to switch (created if missing; plain calls follow it once released)
    #[arg(long, default_value = flint_spec::DEFAULT_RELEASE_ALIAS)]
    pub alias: String,
    /// Why, for the history
    #[arg(long)]
    pub reason: Option<String>,
}

/// Runs `flint release`.
pub async fn release(ctx: &Context, args: ReleaseArgs) -> anyhow::Result<()> {
    let body = json!({ "to": args.to, "alias": args.alias, "reason": args.reason });
    let url = ctx.client.function_url(&args.name, &["release"]);
    let aliases = ctx
        .client
        .call(ctx.client.request(Method::POST, url).json(&body))
        .await?;
    if !ctx.json {
        output::print(&format!(
            "Released {} version {} on alias {}",
            args.name, args.to, args.alias
        ))?;
    }
    print_aliases(ctx, &aliases)
}

/// Flags of `flint rollback`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  flint rollback hello\n  flint rollback hello --alias staging")]
pub struct RollbackArgs {
    /// Function
    #[arg(value_parser = parse_function_name)]
    pub name: String,
    /// Alias to return to its previous target
    #[arg(long, default_value = flint_spec::DEFAULT_RELEASE_ALIAS)]
    pub alias: String,
    /// Why, for the history
    #[arg(long)]
    pub reason: Option<String>,
}

/// Runs `flint rollback`.
pub async fn rollback(ctx: &Context, args: RollbackArgs) -> anyhow::Result<()> {
    let body = json!({ "alias": args.alias, "reason": args.reason });
    let url = ctx.client.function_url(&args.name, &["rollback"]);
    let aliases = ctx
        .client
        .call(ctx.client.request(Method::POST, url).json(&body))
        .await?;
    if !ctx.json {
        output::print(&format!(
            "Rolled back alias {} of {}",
            args.alias, args.name
        ))?;
    }
    print_aliases(ctx, &aliases)
}

/// Flags of `flint canary`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\\
Examples:
  flint canary hello --to 4 --steps 5,25,50,100 --interval 30s --max-error-rate 1%
  flint canary hello --to 4 --max-p99-ms 200
  flint canary status hello
  flint canary abort hello"
)]
pub struct CanaryArgs {
    /// Status or abort.
    #[command(subcommand)]
    pub action: Option<CanaryAction>,
    /// Start a canary.
    #[command(flatten)]
    pub start: Option<CanaryStart>,
}

/// Canary subcommands.
#[derive(Debug, Subcommand)]
pub enum CanaryAction {
    /// Show the progress, analysis and outcome of the function's last canary.
    Status {
        /// Function
        #[arg(value_parser = parse_function_name)]
        name: String,
    },
    /// Stop a running canary and roll its alias back.
    Abort {
        /// Function
        #[arg(value_parser = parse_function_name)]
        name: String,
    },
}

/// Flags that start a canary.
#[derive(Debug, Args)]
pub struct CanaryStart {
    /// Function
    #[arg(value_parser = parse_function_name)]
    pub name: String,
    /// Candidate version
    #[arg(long)]
    pub to: u32,
    /// Alias to move (it must point at the stable version already)
    #[arg(long, default_value = flint_spec::DEFAULT_RELEASE_ALIAS)]
    pub alias: String,
    /// Percent of traffic per step, ending at 100
    #[arg(long, default_value = "5,25,50,100", value_delimiter = ',')]
    pub steps: Vec<u32>,
    /// Time per step (e.g. 30s, 2m, 500ms)
    #[arg(long, default_value = "30s")]
    pub interval: humantime::Duration,
    /// Largest tolerated candidate error rate (e.g. 1% or 0.01)
    #[arg(long, default_value = "1%")]
    pub max_error_rate: String,
    /// Largest tolerated candidate p99 latency, in ms
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
}

fn parse_rate(rate: &str) -> anyhow::Result<f64> {
    match rate.strip_suffix('%') {
        Some(p) => Ok(p
            .trim()
            .parse::<f64>()
            .with_context(|| format!("`{rate}` is not a percentage"))?
            / 100.0),
        None => rate
            .parse()
            .with_context(|| format!("`{rate}` is not a rate; write 1% or 0.01")),
    }
}

/// Runs `flint canary`.
pub async fn canary(ctx: &Context, args: CanaryArgs) -> anyhow::Result<()> {
    match (args.action, args.start) {
        (Some(CanaryAction::Status { name }), _) => {
            let status = ctx
                .client
                .get(ctx.client.function_url(&name, &["canary"]))
                .await?;
            if ctx.json {
                return Ok(output::print_json(&status)?);
            }
            let spec = &status["spec"];
            output::print(&format!(
                "canary of {name} to version {} on alias {}: {} (step {} of {})",
                spec["to"],
                spec["alias"].as_str().unwrap_or_default(),
                status["status"].as_str().unwrap_or_default(),
                status["step"].as_u64().unwrap_or(0) + 1,
                spec["steps"].as_array().map_or(0, Vec::len)
            ))?;
            if let Some(reason) = status["reason"].as_str() {
                output::print(&format!("reason: {reason}"))?;
            }
            let rows: Vec<Vec<String>> = status["reports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let side = |v: &Value| {
                        format!(
                            "{} req, {} err, p99 {}",
                            v[0],
                            v[1],
                            v[2].as_f64().map_or("-".into(), |p| format!("{p:.1} ms"))
                        )
                    };
                    vec![
                        format!("{}%", r["weight"]),
                        side(&r["canary"]),
                        side(&r["stable"]),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                output::print(&output::table(&["WEIGHT", "CANARY", "STABLE"], &rows, &[]))?;
            }
            Ok(())
        }
        (Some(CanaryAction::Abort { name }), _) => {
            ctx.client
                .delete(ctx.client.function_url(&name, &["canary"]))
                .await?;
            if !ctx.json {
                output::print(&format!(
                    "Aborting the canary of {name}; its alias goes back to the stable target"
                ))?;
            }
            Ok(())
        }
        (None, Some(start)) => {
            let body = json!({
                "to": start.to, "alias": start.alias, "steps": start.steps,
                "interval_ms": start.interval.as_millis() as u64,
                "max_error_rate": parse_rate(&start.max_error_rate)?,
                "max_p99_ms": start.max_p99_ms,
            });
            let url = ctx.client.function_url(&start.name, &["canary"]);
            let state = ctx
                .client
                .call(ctx.client.request(Method::POST, url).json(&body))
                .await?;
            if ctx.json {
                return Ok(output::print_json(&state)?);
            }
            output::print(&format!(
                "Canary of {} to version {} started on alias {}; follow it with `flint canary status {}`",
                start.name, start.to, start.alias, start.name
            ))?;
            Ok(())
        }
        (None, None) => bail!(
            "give a function and --to VERSION, or `status NAME` / `abort NAME`; see `flint canary --help`"
        ),
    }
}

/// Flags of `flint shadow`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\\
Examples:
  flint shadow hello --candidate 4
  flint shadow hello --candidate 4 --sample 10% --ignore-field timestamp
  flint shadow report hello
  flint shadow stop hello"
)]
pub struct ShadowArgs {
    /// Report or stop.
    #[command(subcommand)]
    pub action: Option<ShadowAction>,
    /// Start a shadow run.
    #[command(flatten)]
    pub start: Option<ShadowStart>,
}

/// Shadow subcommands.
#[derive(Debug, Subcommand)]
pub enum ShadowAction {
    /// Show match and mismatch counts and mismatch samples.
    Report {
        /// Function
        #[arg(value_parser = parse_function_name)]
        name: String,
    },
    /// Stop the shadow run.
    Stop {
        /// Function
        #[arg(value_parser = parse_function_name)]
        name: String,
    },
}

/// Flags that start a shadow run.
#[derive(Debug, Args)]
pub struct ShadowStart {
    /// Function
    #[arg(value_parser = parse_function_name)]
    pub name: String,
    /// Candidate version that gets copies of live requests
    #[arg(long)]
    pub candidate: u32,
    /// Share of live requests copied (e.g. 100% or 10%)
    #[arg(long, default_value = "100%")]
    pub sample: String,
    /// JSON fields left out of the comparison (repeatable)
    #[arg(long = "ignore-field")]
    pub ignore_fields: Vec<String>,
}

/// Runs `flint shadow`.
pub async fn shadow(ctx: &Context, args: ShadowArgs) -> anyhow::Result<()> {
    match (args.action, args.start) {
        (Some(ShadowAction::Report { name }), _) => {
            let report = ctx
                .client
                .get(ctx.client.function_url(&name, &["shadow"]))
                .await?;
            if ctx.json {
                return Ok(output::print_json(&report)?);
            }
            output::print(&format!(
                "shadow of {name}: {} matched, {} mismatched, {} candidate errors, {} skipped",
                report["matched"], report["mismatched"], report["errors"], report["skipped"]
            ))?;
            let rows: Vec<Vec<String>> = report["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    vec![
                        s["time"].as_str().unwrap_or_default().to_string(),
                        s["request"].as_str().unwrap_or_default().to_string(),
                        s["difference"].as_str().unwrap_or_default().to_string(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                output::print(&output::table(
                    &["TIME", "REQUEST", "DIFFERENCE"],
                    &rows,
                    &[],
                ))?;
            }
            Ok(())
        }
        (Some(ShadowAction::Stop { name }), _) => {
            ctx.client
                .delete(ctx.client.function_url(&name, &["shadow"]))
                .await?;
            if !ctx.json {
                output::print(&format!("Stopped the shadow run of {name}"))?;
            }
            Ok(())
        }
        (None, Some(start)) => {
            let sample = parse_rate(&start.sample)? * 100.0;
            let body = json!({
                "candidate": start.candidate, "sample_percent": sample.round() as u32,
                "ignore_fields": start.ignore_fields,
            });
            let url = ctx.client.function_url(&start.name, &["shadow"]);
            let report = ctx
                .client
                .call(ctx.client.request(Method::PUT, url).json(&body))
                .await?;
            if ctx.json {
                return Ok(output::print_json(&report)?);
            }
            output::print(&format!(
                "Shadowing {} with version {} on {}% of requests; see `flint shadow report {}`",
                start.name,
                start.candidate,
                sample.round(),
                start.name
            ))?;
            Ok(())
        }
        (None, None) => bail!(
            "give a function and --candidate VERSION, or `report NAME` / `stop NAME`; see `flint shadow --help`"
        ),
    }
}

/// Flags of `flint history`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  flint history hello\n  flint history hello --json")]
pub struct HistoryArgs {
    /// Function
    #[arg(value_parser = parse_function_name)]
    pub name: String,
}

/// Runs `flint history`.
pub async fn history(ctx: &Context, args: HistoryArgs) -> anyhow::Result<()> {
    let history = ctx
        .client
        .get(ctx.client.function_url(&args.name, &["history"]))
        .await?;
    if ctx.json {
        return Ok(output::print_json(&history)?);
    }
    let rows: Vec<Vec<String>> = history["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let target = |v: &Value| {
                if v.is_null() {
                    "-".to_string()
                } else {
                    describe(v)
                }
            };
            vec![
                h["at"].as_str().unwrap_or_default().to_string(),
                h["actor"].as_str().unwrap_or_default().to_string(),
                h["action"].as_str().unwrap_or_default().to_string(),
                h["alias"].as_str().unwrap_or("-").to_string(),
                target(&h["from"]),
                target(&h["to"]),
                h["reason"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::print(&format!("No release history for {} yet.", args.name))?;
    } else {
        output::print(&output::table(
            &["WHEN", "WHO", "ACTION", "ALIAS", "FROM", "TO", "WHY"],
            &rows,
            &[],
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_rules_and_rates_parse() {
        assert_eq!(
            parse_routes(&["3".into()]).unwrap(),
            json!([{"version": 3, "weight": 100}])
        );
        assert_eq!(
            parse_routes(&["3=90".into(), "4=10%".into()]).unwrap(),
            json!([{"version": 3, "weight": 90}, {"version": 4, "weight": 10}])
        );
        assert!(parse_routes(&["x".into()]).is_err());
        assert_eq!(
            parse_rule("x-beta=1:4").unwrap(),
            json!({"header": "x-beta", "value": "1", "version": 4})
        );
        assert!(parse_rule("x-beta:4").is_err());
        assert_eq!(parse_rate("1%").unwrap(), 0.01);
        assert_eq!(parse_rate("0.05").unwrap(), 0.05);
    }
}
