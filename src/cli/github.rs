//! GitHub Actions integration: step outputs, job summary and error annotations, written only
//! when running in Actions (the files named by `GITHUB_OUTPUT` / `GITHUB_STEP_SUMMARY`).

use anyhow::{Context, Result};
use std::io::Write;

/// Appends `name=value` lines to `$GITHUB_OUTPUT`, when set.
pub fn set_outputs(outputs: &[(String, String)]) -> Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open GITHUB_OUTPUT file {}", path.to_string_lossy()))?;
    for (name, value) in outputs {
        // Values are single-line (digests, references); refuse anything that could inject.
        if value.contains('\n') || name.contains(['\n', '=']) {
            anyhow::bail!("refusing to write a multi-line GitHub output {name}");
        }
        writeln!(file, "{name}={value}")?;
    }
    Ok(())
}

/// Appends Markdown to the job summary, when running in Actions.
pub fn append_summary(markdown: &str) -> Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot open GITHUB_STEP_SUMMARY file {}",
                path.to_string_lossy()
            )
        })?;
    file.write_all(markdown.as_bytes())?;
    Ok(())
}

/// Prints an `::error::` workflow command so the failure shows on the run's page.
pub fn error_annotation(message: &str) {
    if std::env::var_os("GITHUB_ACTIONS").is_some() {
        // Workflow commands end at a newline; escape as the toolkit does.
        let escaped = message
            .replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        println!("::error::{escaped}");
    }
}
