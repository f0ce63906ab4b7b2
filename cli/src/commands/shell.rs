//! `flint completions SHELL` and `flint man`: the shell completions and the manual
//! pages, generated from the same clap definitions as `--help`, so they never drift
//! from the commands.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::Cli;

/// Flags of `flint completions`.
#[derive(Debug, Args)]
#[command(after_help = "\
Install:
  bash  flint completions bash > ~/.local/share/bash-completion/completions/flint
  zsh   flint completions zsh > \"${fpath[1]}/_flint\"     (then restart zsh)
  fish  flint completions fish > ~/.config/fish/completions/flint.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Flags of `flint man`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint man | man -l -                        read it now
  flint man --out-dir ~/.local/share/man/man1  install flint.1 and a page per command")]
pub struct ManArgs {
    /// Write flint.1 and one page per command (flint-deploy.1, ...) into this directory
    /// instead of printing flint.1
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Runs `flint completions`.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "flint", &mut out);
    out.flush()?;
    Ok(())
}

/// Runs `flint man`.
pub fn man(args: &ManArgs) -> anyhow::Result<()> {
    let command = Cli::command();
    match &args.out_dir {
        None => {
            let mut out = io::stdout().lock();
            clap_mangen::Man::new(command).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let written = write_pages(&command, "flint", dir)?;
            eprintln!("wrote {written} pages to {}", dir.display());
        }
    }
    Ok(())
}

/// Writes the page of `command`, named `name`, and those of its visible subcommands;
/// returns how many.
fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let page = command.clone().name(name.to_owned());
    let path = dir.join(format!("{name}.1"));
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    clap_mangen::Man::new(page).render(&mut file)?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
