//! `flint config NAME [changes]`: shows or changes a function's configuration.
//!
//! A change sends `PATCH /v1/functions/NAME/config` with only the fields given. The
//! environment is the exception: `--env` and `--unset-env` edit the current `env` object
//! (read first with `GET`) and send it whole, so that one variable can change without
//! restating the others. Two clients editing the environment at the same moment can
//! therefore lose one's change; the last write wins.

use anyhow::Context as _;
use clap::Args;
use serde_json::{Map, Value};

use super::parse_function_name;
use crate::{Context, output};

/// The configuration fields in the order people read them; fields a newer server adds
/// follow, sorted.
const CONFIG_KEYS: &[&str] = &[
    "memory_mb",
    "timeout_ms",
    "max_concurrency",
    "max_queue",
    "queue_timeout_ms",
    "min_instances",
    "max_requests_per_instance",
    "max_concurrent_requests_per_instance",
    "env",
    "allowed_outbound_hosts",
    "invoke_auth",
    "max_outbound_requests",
    "max_response_bytes",
    "max_log_bytes",
];

/// Flags of `flint config`.
#[derive(Debug, Default, Args)]
#[command(after_help = "\
Examples:
  flint config hello                                   show the configuration
  flint config hello --memory-mb 64 --timeout-ms 2000  tighten the limits
  flint config hello --env GREETING=hi --env LEVEL=debug
  flint config hello --unset-env LEVEL
  flint config hello --allow-outbound-host api.example.com --allow-outbound-host example.org
  flint config hello --deny-all-outbound
  flint config hello --max-requests-per-instance 1000  reuse warm instances
  flint config api --max-requests-per-instance 1000 --max-concurrent-requests-per-instance 100
                                                       a WASI 0.3 component, 100 requests at once")]
pub struct ConfigArgs {
    /// Name of the function
    #[arg(value_parser = parse_function_name)]
    pub name: String,

    /// Memory cap of one instance, in MiB; a request that exceeds it fails with 500
    #[arg(long, value_name = "MB", help_heading = "Limits")]
    pub memory_mb: Option<u64>,

    /// Time limit of one request, in milliseconds; a request that exceeds it fails with 504
    #[arg(long, value_name = "MS", help_heading = "Limits")]
    pub timeout_ms: Option<u64>,

    /// Most requests the function runs at once
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub max_concurrency: Option<u64>,

    /// Most requests waiting for a free slot; beyond it callers get 429 with Retry-After
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub max_queue: Option<u64>,

    /// Longest a request waits for a free slot, in milliseconds, before it gets 429
    #[arg(long, value_name = "MS", help_heading = "Limits")]
    pub queue_timeout_ms: Option<u64>,

    /// Instances kept instantiated ahead of requests, so that they start warm
    #[arg(long, value_name = "N", help_heading = "Instances")]
    pub min_instances: Option<u64>,

    /// Requests one instance serves before it is dropped
    ///
    /// 1 gives every request a fresh instance, which every wasi:http component supports.
    /// More reuses warm instances (faster), for functions written to handle several
    /// requests in one instance.
    #[arg(long, value_name = "N", help_heading = "Instances")]
    pub max_requests_per_instance: Option<u64>,

    /// Requests one instance of a WASI 0.3 component serves at once
    ///
    /// 1 (the default) serves one request at a time. More lets one instance interleave
    /// requests while they wait, as WASI 0.3's async handlers allow; it cannot exceed
    /// --max-requests-per-instance. Requests that share an instance share its fate: when
    /// one crosses a limit, the instance is dropped and the others fail with it. WASI 0.2
    /// components and WAGI modules ignore it.
    #[arg(long, value_name = "N", help_heading = "Instances")]
    pub max_concurrent_requests_per_instance: Option<u64>,

    /// Outgoing HTTP requests one request of the function may make; beyond it the call
    /// fails with 500 resource_limit_exceeded
    #[arg(long, value_name = "N", help_heading = "Host resources")]
    pub max_outbound_requests: Option<u64>,

    /// Largest response body, in bytes; a longer one is cut off and the call counts as
    /// resource_limit_exceeded (with a larger Content-Length it fails with 500 at once)
    #[arg(long, value_name = "BYTES", help_heading = "Host resources")]
    pub max_response_bytes: Option<u64>,

    /// Bytes of stdout and stderr one request may write; beyond it the call fails with 500
    /// resource_limit_exceeded
    #[arg(long, value_name = "BYTES", help_heading = "Host resources")]
    pub max_log_bytes: Option<u64>,

    /// Set an environment variable of the function; repeat for several
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env, help_heading = "Environment")]
    pub env: Vec<(String, String)>,

    /// Remove an environment variable of the function; repeat for several
    #[arg(long = "unset-env", value_name = "KEY", value_parser = parse_env_key, help_heading = "Environment")]
    pub unset_env: Vec<String>,

    /// Allow outbound HTTP to HOST; repeat for several. Replaces the current list
    #[arg(
        long = "allow-outbound-host",
        value_name = "HOST",
        conflicts_with = "deny_all_outbound",
        help_heading = "Outbound HTTP"
    )]
    pub allow_outbound_host: Vec<String>,

    /// Deny all outbound HTTP (empty the allow-list)
    #[arg(long, help_heading = "Outbound HTTP")]
    pub deny_all_outbound: bool,

    /// Who may invoke the function: `none` (anyone: a public function) or `token` (callers
    /// whose token covers it, of scope invoke, deploy or admin)
    #[arg(long, value_name = "none|token", value_parser = ["none", "token"], help_heading = "Access")]
    pub invoke_auth: Option<String>,
}

impl ConfigArgs {
    fn changes_env(&self) -> bool {
        !self.env.is_empty() || !self.unset_env.is_empty()
    }

    fn has_changes(&self) -> bool {
        self.memory_mb.is_some()
            || self.timeout_ms.is_some()
            || self.max_concurrency.is_some()
            || self.max_queue.is_some()
            || self.queue_timeout_ms.is_some()
            || self.min_instances.is_some()
            || self.max_requests_per_instance.is_some()
            || self.max_concurrent_requests_per_instance.is_some()
            || self.max_outbound_requests.is_some()
            || self.max_response_bytes.is_some()
            || self.max_log_bytes.is_some()
            || self.changes_env()
            || !self.allow_outbound_host.is_empty()
            || self.deny_all_outbound
            || self.invoke_auth.is_some()
    }
}

/// Parses `--env KEY=VALUE`, split at the first `=`: the value may be empty or hold `=`.
pub fn parse_env(arg: &str) -> Result<(String, String), String> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(format!(
            "expected KEY=VALUE, got {arg:?} (to remove a variable, use --unset-env {arg})"
        ));
    };
    Ok((parse_env_key(key)?, value.to_owned()))
}

/// Parses an environment variable name: not empty, without `=` or NUL.
pub fn parse_env_key(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err("an environment variable name cannot be empty".to_owned());
    }
    if key.contains(['=', '\0']) {
        return Err(format!(
            "{key:?} cannot be an environment variable name: it holds '=' or NUL"
        ));
    }
    Ok(key.to_owned())
}

/// Applies `--env` and `--unset-env` to the current environment. Returns the new one and
/// the unset names that were not set.
fn merge_env(
    current: &Map<String, Value>,
    set: &[(String, String)],
    unset: &[String],
) -> anyhow::Result<(Map<String, Value>, Vec<String>)> {
    if let Some(key) = unset.iter().find(|key| set.iter().any(|(k, _)| k == *key)) {
        anyhow::bail!("--env {key}=... and --unset-env {key} contradict each other; give one");
    }
    let mut env = current.clone();
    for (key, value) in set {
        env.insert(key.clone(), Value::String(value.clone()));
    }
    let missing = unset
        .iter()
        .filter(|key| env.remove(key.as_str()).is_none())
        .cloned()
        .collect();
    Ok((env, missing))
}

/// The `PATCH` body: only the fields the flags change; `env` (already merged) whole.
fn patch_body(args: &ConfigArgs, env: Option<Map<String, Value>>) -> Map<String, Value> {
    let mut body = Map::new();
    let numbers = [
        ("memory_mb", args.memory_mb),
        ("timeout_ms", args.timeout_ms),
        ("max_concurrency", args.max_concurrency),
        ("max_queue", args.max_queue),
        ("queue_timeout_ms", args.queue_timeout_ms),
        ("min_instances", args.min_instances),
        ("max_requests_per_instance", args.max_requests_per_instance),
        (
            "max_concurrent_requests_per_instance",
            args.max_concurrent_requests_per_instance,
        ),
        ("max_outbound_requests", args.max_outbound_requests),
        ("max_response_bytes", args.max_response_bytes),
        ("max_log_bytes", args.max_log_bytes),
    ];
    for (key, value) in numbers {
        if let Some(value) = value {
            body.insert(key.to_owned(), value.into());
        }
    }
    if let Some(env) = env {
        body.insert("env".to_owned(), Value::Object(env));
    }
    if args.deny_all_outbound || !args.allow_outbound_host.is_empty() {
        body.insert(
            "allowed_outbound_hosts".to_owned(),
            args.allow_outbound_host.clone().into(),
        );
    }
    if let Some(auth) = &args.invoke_auth {
        body.insert("invoke_auth".to_owned(), auth.clone().into());
    }
    body
}

/// A configuration object as aligned `key  value` lines, each indented by `indent`.
pub(crate) fn config_text(config: &Value, indent: usize) -> String {
    let Value::Object(object) = config else {
        return format!("{:indent$}{}", "", output::json_value_text(config));
    };
    let pairs: Vec<_> = output::object_pairs(object, CONFIG_KEYS)
        .into_iter()
        .map(|(key, value)| {
            // An empty allow-list is the sandbox default; say what it means.
            if key == "allowed_outbound_hosts" && value == "(none)" {
                (key, "(none: all outbound HTTP denied)".to_owned())
            } else {
                (key, value)
            }
        })
        .collect();
    output::key_values(&pairs, indent)
}

/// Runs `flint config`.
pub async fn run(ctx: &Context, args: ConfigArgs) -> anyhow::Result<()> {
    let config_url = ctx.client.function_url(&args.name, &["config"]);
    if !args.has_changes() {
        let config = ctx.client.get(config_url).await?;
        return show(ctx, &config);
    }

    let env = if args.changes_env() {
        let current = ctx.client.get(config_url.clone()).await?;
        let current_env = match current.get("env") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(env)) => env.clone(),
            Some(_) => anyhow::bail!("unexpected config from the server: `env` is not an object"),
        };
        let (env, missing) = merge_env(&current_env, &args.env, &args.unset_env)?;
        for key in missing {
            eprintln!(
                "note: {key} was not set in the environment of {}",
                args.name
            );
        }
        Some(env)
    } else {
        None
    };

    let body = Value::Object(patch_body(&args, env));
    let mut config = ctx.client.patch(config_url.clone(), &body).await?;
    if config.is_null() {
        // The server acknowledged without a body: read back what is in force.
        config = ctx.client.get(config_url).await?;
    }
    if let Value::Object(changed) = &body {
        let fields: Vec<_> = changed.keys().map(String::as_str).collect();
        eprintln!("Updated {}: {}", args.name, fields.join(", "));
    }
    show(ctx, &config)
}

fn show(ctx: &Context, config: &Value) -> anyhow::Result<()> {
    if ctx.json {
        output::print_json(config)?;
    } else {
        output::print(&config_text(config, 0)).context("cannot write the configuration")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    fn parse(args: &[&str]) -> Result<ConfigArgs, clap::Error> {
        let cli = Cli::try_parse_from(["flint", "config"].iter().chain(args))?;
        let Command::Config(args) = cli.command else {
            panic!("not config");
        };
        Ok(args)
    }

    fn object(value: Value) -> Map<String, Value> {
        let Value::Object(object) = value else {
            panic!("not an object");
        };
        object
    }

    #[test]
    fn env_forms() {
        assert_eq!(parse_env("A=1").unwrap(), ("A".to_owned(), "1".to_owned()));
        assert_eq!(parse_env("A=").unwrap(), ("A".to_owned(), String::new()));
        assert_eq!(
            parse_env("URL=a=b").unwrap(),
            ("URL".to_owned(), "a=b".to_owned())
        );
        assert!(parse_env("A").unwrap_err().contains("--unset-env A"));
        assert!(parse_env("=1").unwrap_err().contains("empty"));
        assert!(parse_env_key("A=B").is_err());
        assert!(parse_env_key("A\0").is_err());
    }

    #[test]
    fn no_flags_means_show() {
        let args = parse(&["hello"]).unwrap();
        assert!(!args.has_changes());
        assert!(patch_body(&args, None).is_empty());
    }

    #[test]
    fn patch_holds_only_the_given_fields() {
        let args = parse(&[
            "hello",
            "--memory-mb",
            "64",
            "--max-requests-per-instance",
            "100",
        ])
        .unwrap();
        assert!(args.has_changes());
        assert!(!args.changes_env());
        assert_eq!(
            Value::Object(patch_body(&args, None)),
            json!({"memory_mb": 64, "max_requests_per_instance": 100})
        );
    }

    #[test]
    fn outbound_hosts() {
        let args = parse(&[
            "hello",
            "--allow-outbound-host",
            "a.com",
            "--allow-outbound-host",
            "b.org",
        ])
        .unwrap();
        assert_eq!(
            Value::Object(patch_body(&args, None)),
            json!({"allowed_outbound_hosts": ["a.com", "b.org"]})
        );

        let args = parse(&["hello", "--deny-all-outbound"]).unwrap();
        assert_eq!(
            Value::Object(patch_body(&args, None)),
            json!({"allowed_outbound_hosts": []})
        );

        assert!(parse(&["hello", "--deny-all-outbound", "--allow-outbound-host", "a"]).is_err());
    }

    #[test]
    fn env_merges_into_the_current_environment() {
        let args = parse(&[
            "hello",
            "--env",
            "B=2",
            "--env",
            "C=x=y",
            "--unset-env",
            "A",
        ])
        .unwrap();
        assert!(args.changes_env());
        let current = object(json!({"A": "1", "B": "old", "KEEP": "k"}));
        let (env, missing) = merge_env(&current, &args.env, &args.unset_env).unwrap();
        assert!(missing.is_empty());
        assert_eq!(
            Value::Object(patch_body(&args, Some(env))),
            json!({"env": {"B": "2", "C": "x=y", "KEEP": "k"}})
        );
    }

    #[test]
    fn env_edge_cases() {
        let current = object(json!({"A": "1"}));
        let (env, missing) = merge_env(&current, &[], &["NOPE".to_owned()]).unwrap();
        assert_eq!(Value::Object(env), json!({"A": "1"}));
        assert_eq!(missing, ["NOPE"]);

        let set = [("A".to_owned(), "2".to_owned())];
        let err = merge_env(&current, &set, &["A".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("contradict"));
    }

    #[test]
    fn config_lines() {
        let config = json!({
            "memory_mb": 128, "timeout_ms": 30000, "max_concurrency": 64, "max_queue": 128,
            "queue_timeout_ms": 10000, "min_instances": 0, "max_requests_per_instance": 1,
            "env": {"B": "2", "A": "1"}, "allowed_outbound_hosts": [],
        });
        assert_eq!(
            config_text(&config, 0),
            "\
memory_mb                  128
timeout_ms                 30000
max_concurrency            64
max_queue                  128
queue_timeout_ms           10000
min_instances              0
max_requests_per_instance  1
env                        A=1
                           B=2
allowed_outbound_hosts     (none: all outbound HTTP denied)"
        );
    }
}
