//! The one place that decides how a command's [`Report`] is printed: `--output json` or text,
//! `--quiet`, and GitHub Actions' step outputs and job summary, all from the same value.

use super::{github, GlobalArgs, OutputFormat};
use crate::report::Report;
use anyhow::Result;

impl GlobalArgs {
    /// Writes `report`'s GitHub outputs and summary (when running in Actions), then prints
    /// it: JSON, or its text (results whatever `--quiet` says, the rest unless quiet).
    pub fn emit<R: Report + ?Sized>(&self, report: &R) -> Result<()> {
        let outputs = report.github_outputs();
        if !outputs.is_empty() {
            github::set_outputs(&outputs)?;
        }
        if let Some(summary) = report.github_summary() {
            github::append_summary(&summary)?;
        }
        match self.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
            OutputFormat::Text => {
                if !self.quiet {
                    eprint!("{}", report.notes());
                    print!("{}", report.text());
                }
                print!("{}", report.result());
            }
        }
        Ok(())
    }

    /// Whether progress (bars, step names) goes to standard error: text output, not quiet.
    pub fn chatty(&self) -> bool {
        !self.quiet && self.output == OutputFormat::Text
    }
}
