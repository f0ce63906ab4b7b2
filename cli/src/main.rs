//! The `flint` binary: parses the command line, installs the log subscriber and runs the
//! command from the `flint_cli` library.

use std::process::ExitCode;

use clap::Parser;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The log filter when `FLINT_LOG` is unset, in `tracing_subscriber::EnvFilter` syntax.
const DEFAULT_LOG_FILTER: &str = "info";

/// Every invocation allocates a few dozen small objects (resources, header
/// maps, body chunks), freed on the same thread or another: mimalloc's
/// per-thread free lists cost a fraction of glibc malloc here (see the
/// `request_path` benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match flint_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` come this way too; they are no failure. Any error
            // exits with 1, usage errors included.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let filter =
        EnvFilter::try_from_env("FLINT_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colour codes only for a person at a terminal: a log file or a
    // collector gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    match flint_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if let Some(hint) = flint_cli::hint(&err) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
