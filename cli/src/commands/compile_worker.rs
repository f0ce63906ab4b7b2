//! `flint __compile JOB` (hidden): one compile of an upload in a process of
//! its own, run by `flint serve` so that a compile past its deadline can be
//! killed. The component comes on stdin, the answer goes to stdout as one
//! JSON line; see `flint_runtime::run_compile_worker`.

use clap::Args;

/// Arguments of the hidden compile worker.
#[derive(Debug, Args)]
pub struct CompileWorkerArgs {
    /// The compile job, as JSON (made by the server)
    pub job: String,
}

/// Runs the job on the component read from stdin.
pub fn run(args: CompileWorkerArgs) -> anyhow::Result<()> {
    flint_runtime::run_compile_worker(&args.job, std::io::stdin().lock(), std::io::stdout().lock())
}
