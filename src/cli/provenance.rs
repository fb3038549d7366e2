//! `wharf provenance generate`.

use super::GlobalArgs;
use crate::cosign::{attestation, provenance};
use crate::oci::{Digest, ImageRef};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Build SLSA provenance for a release.
#[derive(Args, Debug)]
pub struct ProvenanceArgs {
    #[command(subcommand)]
    pub command: ProvenanceCommand,
}

#[derive(Subcommand, Debug)]
pub enum ProvenanceCommand {
    Generate(GenerateArgs),
}

/// Write an SLSA provenance v1 predicate describing this GitHub Actions run (repository,
/// commit, ref, workflow, run id and attempt, runner environment), ready for
/// `wharf attest --type slsaprovenance1 --predicate FILE`. With --subject, writes a whole
/// in-toto statement naming those image digests instead.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Where to write it (default: standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output_file: Option<PathBuf>,

    /// Image digests the provenance is about, as IMAGE@sha256:... (repeatable): writes an
    /// in-toto Statement with these subjects around the predicate.
    #[arg(long = "subject", value_name = "IMAGE@DIGEST")]
    pub subjects: Vec<String>,
}

pub fn run(args: &ProvenanceArgs, _global: &GlobalArgs) -> Result<ExitCode> {
    let ProvenanceCommand::Generate(args) = &args.command;
    let env = std::env::vars().collect();
    let predicate = provenance::github_actions_predicate(&env)?;
    let bytes = if args.subjects.is_empty() {
        serde_json::to_vec_pretty(&predicate)?
    } else {
        let subjects = args
            .subjects
            .iter()
            .map(|s| {
                let r = ImageRef::parse(s)?;
                let d: &Digest = r.require_digest()?;
                Ok(serde_json::json!({"name": r.repository.docker_reference(), "digest": {"sha256": d.hex()}}))
            })
            .collect::<Result<Vec<_>>>()?;
        serde_json::to_vec_pretty(&serde_json::json!({
            "_type": attestation::STATEMENT_V1,
            "subject": subjects,
            "predicateType": attestation::SLSA_PROVENANCE_V1,
            "predicate": predicate,
        }))?
    };
    match &args.output_file {
        Some(path) => crate::files::write_output(path, &bytes)?,
        None => println!("{}", String::from_utf8_lossy(&bytes)),
    }
    Ok(ExitCode::SUCCESS)
}
