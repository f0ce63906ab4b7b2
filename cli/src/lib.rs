//! `flint`, the command-line tool of the Flint Function-as-a-Service platform.
//!
//! One binary runs the server (`flint serve`) and drives it over HTTP (`flint deploy`,
//! `flint invoke`, `flint ls`, ...). The binary (`src/main.rs`) only parses the arguments,
//! installs the log subscriber and calls [`run`]; each subcommand lives in its own module
//! under [`commands`], talks to the server through [`client::Client`] and formats with
//! [`output`].
//!
//! Output conventions: results go to stdout, progress and notes to stderr; `--json` prints
//! the server's JSON response as is (pretty-printed) instead of tables; any error exits
//! with status 1.
//!
//! ```text
//! flint deploy hello target/wasm32-wasip2/release/hello.wasm
//! flint invoke hello /greet --data 'world'
//! flint ls --json | jq '.functions[].name'
//! ```

use clap::{Args, Parser, Subcommand};

pub mod client;
pub mod commands;
pub mod output;

pub use client::{ApiError, Client, ClientError, hint};

use client::DEFAULT_SERVER;

/// The `flint` command line.
#[derive(Debug, Parser)]
#[command(
    name = "flint",
    version,
    about = "Flint: serverless functions as WebAssembly components",
    long_about = "Flint: serverless functions as WebAssembly components.\n\n\
        `flint serve` runs the server; the other commands manage and call the functions of \
        a running server over HTTP (at --server, http://127.0.0.1:8080 by default).",
    after_help = "\
Getting started:
  flint serve &
  cargo build --target wasm32-wasip2 --release
  flint deploy hello target/wasm32-wasip2/release/hello.wasm
  flint invoke hello /
  curl http://127.0.0.1:8080/fn/hello/

Set FLINT_LOG=debug to see the HTTP requests the CLI makes."
)]
pub struct Cli {
    /// Flags every subcommand accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the global flags go in a subcommand's `--help`: after its own flags.
const GLOBAL_FLAGS_ORDER: usize = 1000;

/// Flags every subcommand accepts (before or after the subcommand's name).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// URL of the Flint server to talk to
    #[arg(
        long,
        global = true,
        env = "FLINT_SERVER",
        default_value = DEFAULT_SERVER,
        value_name = "URL",
        display_order = GLOBAL_FLAGS_ORDER
    )]
    pub server: String,
    /// Print the server's JSON response on stdout instead of tables and messages
    #[arg(long, global = true, display_order = GLOBAL_FLAGS_ORDER)]
    pub json: bool,
    /// Token to send as `Authorization: Bearer TOKEN` (prefer FLINT_TOKEN: a flag shows in the process list)
    #[arg(
        long,
        global = true,
        env = "FLINT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        display_order = GLOBAL_FLAGS_ORDER
    )]
    pub token: Option<String>,
    /// PEM file of the CA certificate(s) to trust for an https:// server
    #[arg(
        long,
        global = true,
        env = "FLINT_CACERT",
        value_name = "FILE",
        display_order = GLOBAL_FLAGS_ORDER
    )]
    pub cacert: Option<std::path::PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Flint server.
    ///
    /// Serves the admin API (under /v1) and the functions (under /fn/NAME/) on one port,
    /// until interrupted.
    Serve(Box<commands::serve::ServeArgs>),

    /// Create a new Rust function project that builds and deploys as it is.
    ///
    /// Makes DIR/NAME with a small flint-sdk handler (src/lib.rs), a Cargo.toml that
    /// depends on flint-sdk by path and builds a small component, .cargo/config.toml so
    /// that `cargo build --release` targets wasm32-wasip2, a flint.toml manifest and a
    /// README with the build, deploy and invoke commands. Refuses a directory that exists
    /// and is not empty. Needs no server.
    New(commands::new::NewArgs),

    /// Write a commented example manifest (flint.toml) to start from.
    ///
    /// The manifest declares functions (the component: a .wasm file, a build command or
    /// a digest; limits, env config, routes, queue trigger, release policy) and per
    /// environment overrides ([env.staging], [env.prod]); `flint plan` and `flint apply`
    /// make a server match it. The example documents every key and declares one function,
    /// `hello`, built with cargo. Refuses to overwrite an existing file without --force.
    /// Needs no server.
    Init(commands::init::InitArgs),

    /// Upload a function and make it the latest version.
    ///
    /// Uploads FILE, a WebAssembly component that exports wasi:http/incoming-handler, as a
    /// new version of function NAME (creating the function on its first deploy). The server
    /// validates and compiles it before answering, so no request ever pays the compile, and
    /// routes new requests to it at once. Deploying the same bytes as the latest version
    /// again changes nothing.
    Deploy(commands::deploy::DeployArgs),

    /// Call a function over HTTP and print its response body.
    ///
    /// Sends a request to {server}/fn/NAME/PATH and writes the response body to stdout as
    /// is (pipe it to a file for binary output). The method is POST when --data is given
    /// and GET otherwise; -X overrides it. A response status outside 2xx still prints the
    /// body, then exits with status 1.
    Invoke(commands::invoke::InvokeArgs),

    /// Measure what each start kind of a function costs on its server
    ///
    /// Times one sample request in the server under every start kind (compile, disk,
    /// cold, warm, reuse) with p50, p90 and p99 and the instance's memory, checks that a
    /// reused instance answers as a fresh one, and says what the figures suggest
    /// (min_instances, max_requests_per_instance, memory_mb). --load adds a run over
    /// HTTP, fresh-instance and reuse modes side by side; --html writes a page with the
    /// charts. Needs an admin token when the server has tokens.
    Bench(commands::bench::BenchArgs),

    /// Rebuild, redeploy and call a function project on every save
    ///
    /// Watches DIR (a project with a flint.toml, or a Cargo project building for
    /// wasm32-wasip2), builds it, applies it to the server as `flint apply` does, calls
    /// each function and prints the time from the save to its first response, and the
    /// functions' log lines as they come. A failed build is shown and the loop goes on;
    /// the server keeps the version it has. Without a server at --server it starts one
    /// with a temporary data dir, removed when flint dev ends (Ctrl-C).
    Dev(commands::dev::DevArgs),

    /// List the deployed functions.
    ///
    /// One line per function with its latest version, the short digest and size of that
    /// version, its number of invocations and how long ago it was last deployed.
    Ls(commands::ls::LsArgs),

    /// Show a function's configuration, statistics and versions.
    ///
    /// Prints the effective configuration (limits, environment, outbound allow-list), the
    /// invocation and start counters, and every version with its digest, size and compile
    /// time; the latest version is marked.
    Info(commands::info::InfoArgs),

    /// Show or change a function's configuration.
    ///
    /// Without change flags, prints the function's configuration. With them, changes only
    /// the settings given and prints the resulting configuration. Changes apply to every
    /// version of the function, from the next request on.
    Config(commands::config::ConfigArgs),

    /// Print a function's captured stdout and stderr.
    ///
    /// Every line a function writes to stdout or stderr is kept by the server with its time,
    /// version and request id. Prints the most recent lines, oldest first; with --follow,
    /// keeps printing new lines as they arrive until Ctrl-C.
    Logs(commands::logs::LogsArgs),

    /// Delete a function and all its versions.
    ///
    /// Requests to the function fail with 404 from then on. This cannot be undone; deploy
    /// the component again to bring the function back.
    Rm(commands::rm::RmArgs),

    /// Bind functions to RabbitMQ queues (add, ls, rm).
    ///
    /// A bound function is invoked once per queue message, at least once, with retries and
    /// a dead-letter queue. The server needs --amqp-url (or FLINT_AMQP_URL) to consume.
    Trigger(commands::trigger::TriggerArgs),

    /// Run functions on cron schedules (add, ls, rm).
    ///
    /// Each tick invokes the function once, across restarts and cluster nodes, as a
    /// CloudEvent (ce-type com.flint.schedule) to the schedule's path; `ls` shows each
    /// schedule's next tick and its last runs.
    Schedule(commands::schedule::ScheduleArgs),

    /// Manage aliases: named pointers to a version or a weighted split.
    ///
    /// Call a function through an alias at /fn/NAME@ALIAS/...; plain calls (/fn/NAME/)
    /// follow the default alias (`latest` until a release sets one). Splits can be sticky
    /// on a header or cookie, and header rules send chosen callers to a chosen version.
    Alias(commands::release::AliasArgs),

    /// Switch an alias to a version at once (blue-green).
    ///
    /// Calls in flight finish on the version they started on; both stay warm until the
    /// old one drains. If plain calls still follow `latest`, they follow the alias from now.
    Release(commands::release::ReleaseArgs),

    /// Return an alias to the target it had before its last change.
    ///
    /// Every change is in the history (`flint history NAME`), so a rollback undoes the
    /// last release, alias change or canary outcome.
    Rollback(commands::release::RollbackArgs),

    /// Move an alias to a new version step by step, rolling back on errors.
    ///
    /// Each step sends a share of the alias's traffic to the candidate for --interval while
    /// its error rate and p99 latency are compared with the stable version's; a breach
    /// rolls back at once and records why, passing every step completes the release.
    Canary(commands::release::CanaryArgs),

    /// Send copies of live requests to a candidate version and compare the answers.
    ///
    /// Callers always get the live version's answer; the candidate runs with outbound HTTP
    /// cut off, and its answers are compared (status, content type, body; JSON as JSON).
    Shadow(commands::release::ShadowArgs),

    /// Show what `flint apply` would change to make the server match a manifest.
    ///
    /// Reads the manifest (flint.toml), applies the --env overlay, builds or reads every
    /// component, and asks the server to compare: functions to create, new versions to
    /// deploy and release, config, routes and triggers to change, and with --prune the
    /// functions to delete. Changes nothing.
    Plan(commands::desired::PlanArgs),

    /// Make the server match a manifest: create, update, release and (with --prune) delete.
    ///
    /// Uploads the components the server lacks, then the server validates the whole
    /// desired state and applies it at once: nothing changes if any part is invalid. New
    /// versions reach callers by each function's release policy (immediate, blue-green or
    /// canary). A second apply of the same manifest changes nothing and says so.
    Apply(commands::desired::ApplyArgs),

    /// Check the server's stored state and repair what can be repaired.
    ///
    /// A function whose stored state is broken (a registry row that does not parse, a
    /// component whose compiled artifact and blob are both gone) is disabled at start while
    /// every other function serves; its calls answer 503 function_disabled. `flint doctor`
    /// checks every function's rows, blobs (sha256 against the digest) and compiled
    /// artifacts, recompiles missing or unloadable artifacts from good blobs (unless
    /// --no-repair), and lists what is left by function. Exits with status 1 while problems
    /// remain.
    Doctor(commands::doctor::DoctorArgs),
    /// Write a consistent backup of a running server to a file.
    ///
    /// The archive holds the registry (copied with SQLite's online backup while the server
    /// keeps serving) and every component it names; `flint restore` brings it back.
    Backup(commands::backup::BackupArgs),
    /// Restore a backup into a data dir (local; no server involved).
    ///
    /// The data dir must hold no registry yet; every component is checked against its
    /// digest. Start `flint serve --data-dir DIR` on it afterwards.
    Restore(commands::backup::RestoreArgs),

    /// Manage API tokens (create, ls, revoke).
    ///
    /// A server started with FLINT_ADMIN_TOKEN (or --admin-token-file), or holding stored
    /// tokens, answers the admin API only to `Authorization: Bearer TOKEN`; pass a token
    /// with --token or FLINT_TOKEN. Each token has a scope (read, invoke, deploy, admin),
    /// optional function globs and secret globs, and an optional expiry.
    Token(commands::token::TokenArgs),

    /// Compile one uploaded component (run by `flint serve`, not by hand).
    #[command(name = flint_runtime::COMPILE_WORKER_COMMAND, hide = true)]
    CompileWorker(commands::compile_worker::CompileWorkerArgs),

    /// List the nodes serving the registry, with their applied version, lag and health.
    ///
    /// In cluster mode (nodes started with --registry postgres://…) every node records a
    /// heartbeat with the registry version its memory reflects; this shows them as the
    /// registry has them. On a single node it shows that node.
    Nodes(commands::cluster::NodesArgs),

    /// Apply the shared registry's schema migrations (cluster mode; no server involved).
    ///
    /// Connects to the PostgreSQL registry given by --registry (or FLINT_REGISTRY_URL),
    /// applies the migrations it lacks under PostgreSQL's advisory lock, and exits. Nodes
    /// wait at start until the schema they need is there.
    Migrate(commands::cluster::MigrateArgs),

    /// Show a function's release history: who changed which alias, when, and why.
    ///
    /// Lists releases, rollbacks, alias changes, canary steps and outcomes, and shadow runs.
    History(commands::release::HistoryArgs),

    /// Print shell completions for bash, zsh or fish
    ///
    /// The completions know every command, flag and value list of this flint; the
    /// examples below say where each shell looks for them.
    Completions(commands::shell::CompletionsArgs),

    /// Print the manual page (or write one per command with --out-dir)
    ///
    /// The pages are made from the same definitions as --help, so they describe this
    /// flint exactly: flint.1 for the whole tool, flint-COMMAND.1 for each command.
    Man(commands::shell::ManArgs),
}

/// What a subcommand that talks to a server needs: the client and the output mode.
#[derive(Debug, Clone)]
pub struct Context {
    /// The client for `--server`.
    pub client: Client,
    /// Whether `--json` was given.
    pub json: bool,
}

impl Context {
    /// The context for the global flags.
    pub fn new(global: &GlobalArgs) -> Result<Self, ClientError> {
        Ok(Self {
            client: Client::with_credentials(
                &global.server,
                &client::Credentials {
                    token: global.token.clone(),
                    cacert: global.cacert.clone(),
                },
            )?,
            json: global.json,
        })
    }
}

/// Runs a parsed command line.
///
/// Output cut short by a closed pipe (`flint logs f | head`) is not an error.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let result = dispatch(cli).await;
    match result {
        Err(err) if is_broken_pipe(&err) => Ok(()),
        other => other,
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let context = || Context::new(&cli.global);
    match cli.command {
        Command::Serve(args) => commands::serve::run(*args).await,
        Command::New(args) => commands::new::run(&cli.global, args),
        Command::Init(args) => commands::init::run(args),
        Command::Deploy(args) => commands::deploy::run(&context()?, args).await,
        Command::Invoke(args) => commands::invoke::run(&context()?, args).await,
        Command::Bench(args) => commands::bench::run(&context()?, args).await,
        Command::Dev(args) => commands::dev::run(&cli.global, args).await,
        Command::Completions(args) => commands::shell::completions(&args),
        Command::Man(args) => commands::shell::man(&args),
        Command::Ls(args) => commands::ls::run(&context()?, args).await,
        Command::Info(args) => commands::info::run(&context()?, args).await,
        Command::Config(args) => commands::config::run(&context()?, args).await,
        Command::Logs(args) => commands::logs::run(&context()?, args).await,
        Command::Rm(args) => commands::rm::run(&context()?, args).await,
        Command::Trigger(args) => commands::trigger::run(&context()?, args).await,
        Command::Schedule(args) => commands::schedule::run(&context()?, args).await,
        Command::Alias(args) => commands::release::alias(&context()?, args).await,
        Command::Release(args) => commands::release::release(&context()?, args).await,
        Command::Rollback(args) => commands::release::rollback(&context()?, args).await,
        Command::Canary(args) => commands::release::canary(&context()?, args).await,
        Command::Shadow(args) => commands::release::shadow(&context()?, args).await,
        Command::History(args) => commands::release::history(&context()?, args).await,
        Command::Plan(args) => commands::desired::plan(&context()?, args).await,
        Command::Apply(args) => commands::desired::apply(&context()?, args).await,
        Command::Doctor(args) => commands::doctor::run(&context()?, args).await,
        Command::Backup(args) => commands::backup::backup(&context()?, args).await,
        Command::Token(args) => commands::token::run(&context()?, args).await,
        Command::Nodes(args) => commands::cluster::list(&context()?, args).await,
        Command::Migrate(args) => commands::cluster::migrate(args).await,
        Command::Restore(args) => commands::backup::restore(cli.global.json, args),
        Command::CompileWorker(args) => commands::compile_worker::run(args),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from(["flint", "ls", "--json", "--server", "http://h:1"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.server, "http://h:1");
        assert!(matches!(cli.command, Command::Ls(_)));

        let cli = Cli::try_parse_from(["flint", "--json", "rm", "hello"]).unwrap();
        assert!(cli.global.json);
    }

    #[test]
    fn every_subcommand_has_examples() {
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands() {
            // Hidden subcommands are for Flint itself (the compile worker).
            if sub.get_name() == "help" || sub.get_name() == "serve" || sub.is_hide_set() {
                continue;
            }
            let after = sub
                .get_after_help()
                .map(|s| s.to_string())
                .unwrap_or_default();
            assert!(
                after.contains(&format!("flint {}", sub.get_name())),
                "`flint {} --help` shows no example",
                sub.get_name()
            );
            assert!(
                sub.get_long_about().is_some(),
                "{} has no long help",
                sub.get_name()
            );
        }
    }
}
