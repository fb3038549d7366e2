//! `wharf release`: the whole publisher pipeline from one config, and what is generated from
//! the same config so it never drifts from what the pipeline does.
//!
//! - [`config`]: the release configuration (`wharf.toml`) and the signer and policy specs it
//!   describes;
//! - [`pipeline`]: the steps, push → sign → attest → verify → tag → mirror and verify, each
//!   skipping what a previous run already did;
//! - [`report`]: what a run (or its plan) reports;
//! - [`docs`]: the users' verification guide; [`policy`]: admission policies for Kubernetes.

pub mod config;
pub mod docs;
pub mod pipeline;
pub mod policy;
pub mod report;

pub use config::ReleaseConfig;
pub use report::{Plan, ReleaseReport};

use crate::cosign::provenance;
use crate::sigstore::trust_source::{TrustSource, TufSource};
use crate::store::registry::{InsecureRegistries, RegistryOptions};
use crate::store::Stores;
use crate::ui::Progress;
use anyhow::Result;
use pipeline::ReleaseInputs;

/// What a release run takes besides its config.
pub struct RunOptions {
    /// How registries are reached; the config's `insecure_registries` are added.
    pub registry: RegistryOptions,
    /// Where the Sigstore trust root is refreshed from, when the config names no file.
    pub tuf: TufSource,
    /// How many transfers and signatures at once.
    pub jobs: usize,
}

/// The plan of the release `config` describes, for `--dry-run`.
pub fn plan(config: &ReleaseConfig, origin: &str) -> Plan {
    Plan {
        origin: origin.to_string(),
        steps: pipeline::plan(config),
        config: config.clone(),
    }
}

/// Runs the release `config` describes: the signer made (its key decrypted once), the
/// verify policy derived from it, then every step of the [`pipeline`]. `step` is told each
/// step's name as it starts.
pub async fn run(
    config: &ReleaseConfig,
    options: RunOptions,
    progress: &Progress,
    step: &(dyn Fn(&str) + Sync),
) -> Result<ReleaseReport> {
    let key_without_tlog = config.signing.key.is_some()
        && !config.signing.tlog_upload
        && config.verify.insecure_ignore_tlog;
    let trust = TrustSource {
        trusted_root: config.signing.trusted_root.as_ref().map(Into::into),
        tuf: options.tuf,
    }
    // A key without the transparency log uses no Sigstore trust material: no TUF.
    .load_if(!key_without_tlog)
    .await?;
    let signing = config.signer_spec().build_with(Some(&trust)).await?;
    let policy = config.policy_spec()?.policy_for(signing.signer.as_ref())?;
    let provenance = if config.attestations.provenance {
        let env = std::env::vars().collect();
        Some(serde_json::to_vec_pretty(
            &provenance::github_actions_predicate(&env)?,
        )?)
    } else {
        None
    };
    let stores = Stores::new(with_insecure(options.registry, &config.insecure_registries))?;
    let inputs = ReleaseInputs {
        config,
        signer: signing.signer.as_ref(),
        tlog: signing.tlog.as_ref(),
        policy: &policy,
        trust: &trust,
        provenance,
        jobs: options.jobs,
    };
    pipeline::release(&stores, &inputs, progress, step).await
}

/// `options` with `hosts` also reached over plain HTTP or unverified TLS.
fn with_insecure(mut options: RegistryOptions, hosts: &[String]) -> RegistryOptions {
    if hosts.is_empty() {
        return options;
    }
    options.insecure = match options.insecure {
        InsecureRegistries::All => InsecureRegistries::All,
        InsecureRegistries::None => InsecureRegistries::Hosts(hosts.to_vec()),
        InsecureRegistries::Hosts(mut h) => {
            h.extend(hosts.iter().cloned());
            InsecureRegistries::Hosts(h)
        }
    };
    options
}
