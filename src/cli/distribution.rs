//! What ships beside the binary, generated from the same clap definitions that parse the
//! command line: `wharf completion SHELL`, `wharf man`, and the build facts `--version` prints
//! (set by build.rs).

use super::closed_pipe::or_die_of_closed_pipe;
use super::GlobalArgs;
use crate::report::Document;
use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `-V`: the version, the commit it was built from (`-dirty` when the tree had changes) and
/// the build date, in rustc's shape: `0.1.0 (0123abcde 2026-05-01)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("WHARF_BUILD_COMMIT_SHORT"),
    " ",
    env!("WHARF_BUILD_DATE"),
    ")"
);

/// `--version`: the same first line, then the full commit, the date and the target.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("WHARF_BUILD_COMMIT_SHORT"),
    " ",
    env!("WHARF_BUILD_DATE"),
    ")\ncommit: ",
    env!("WHARF_BUILD_COMMIT"),
    "\nbuild date: ",
    env!("WHARF_BUILD_DATE"),
    "\ntarget: ",
    env!("WHARF_BUILD_TARGET"),
);

/// Print a shell completion script for wharf.
///
/// Examples:
///   wharf completion bash > /usr/share/bash-completion/completions/wharf
///   source <(wharf completion bash)                  # this shell only
///   wharf completion zsh > "${fpath[1]}/_wharf"
///   wharf completion fish > ~/.config/fish/completions/wharf.fish
///   wharf completion powershell | Out-String | Invoke-Expression   # in PowerShell
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Write wharf's manual pages (roff), generated from the same definitions as --help.
///
/// Without --dir, prints wharf(1) on standard output. With --dir, writes wharf.1 and one page
/// per command (wharf-push.1, wharf-key-generate.1, ...) into DIR, created if absent.
///
/// Examples:
///   wharf man | man -l -
///   wharf man --dir /usr/local/share/man/man1
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ManArgs {
    /// Write every page into this directory instead of printing wharf(1).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run_completion(args: &CompletionArgs) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut super::command(), "wharf", &mut script);
    write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_man(args: &ManArgs, global: &GlobalArgs) -> Result<ExitCode> {
    // Built once so that every subcommand knows its full name (wharf-key-generate) and the
    // global flags it inherits; `help` is clap's, not a command with a page of its own.
    let mut root = super::command().disable_help_subcommand(true);
    root.build();
    let Some(dir) = &args.dir else {
        let mut page = Vec::new();
        man_page(root).render(&mut page)?;
        write_stdout(&page)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(root, dir, &mut written)?;
    global.emit(&Document {
        text: written
            .iter()
            .map(|p| format!("wrote {}\n", p.display()))
            .collect(),
        json: serde_json::json!({ "pages": written }),
    })?;
    Ok(ExitCode::SUCCESS)
}

fn man_page(cmd: clap::Command) -> clap_mangen::Man {
    // The build date, not today's: the same sources give the same pages.
    clap_mangen::Man::new(cmd)
        .date(env!("WHARF_BUILD_DATE"))
        .manual("wharf manual")
        .source(concat!("wharf ", env!("CARGO_PKG_VERSION")))
}

fn write_pages(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    let page = man_page(cmd);
    let path = dir.join(page.get_filename());
    let mut text = Vec::new();
    page.render(&mut text)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    or_die_of_closed_pipe(out.write_all(bytes).and_then(|()| out.flush()))
        .context("cannot write to standard output")
}
