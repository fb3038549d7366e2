//! `wharf release`.

use super::key::{load_private_key, load_public_key, PasswordArgs};
use super::trust::TufArgs;
use super::{default_jobs, github, CredentialTargets, GlobalArgs, OutputFormat};
use crate::cosign::provenance;
use crate::ops::release::{plan, release, ReleaseInputs, ReleaseReport};
use crate::ops::release_config::{ReleaseConfig, EXAMPLE};
use crate::ops::sign::Tlog;
use crate::ops::verify::Policy;
use crate::sign::keyless::KeylessSigner;
use crate::sign::{KeySigner, Signer};
use crate::sigstore::oidc::TokenSource;
use crate::sigstore::trust::TrustRoot;
use crate::store::registry::InsecureRegistries;
use crate::store::Stores;
use crate::verify::{FullMatch, IdentityPolicy};
use anyhow::{Context, Result};
use clap::Args;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run the whole release: push by digest, sign every manifest, attest SBOMs and provenance,
/// verify, tag, mirror, and verify the mirrors, as wharf.toml says.
///
/// The order never lets a tag point at unsigned content. Every step checks first whether its
/// result is already there and verifies, so rerunning after a failure finishes the job without
/// duplicate signatures. Any config value can be overridden with --set PATH=VALUE or an
/// environment variable WHARF_CFG_PATH (sections joined by "__", e.g. WHARF_CFG_SIGNING__KEY).
///
/// Examples:
///   wharf release --config wharf.toml
///   wharf release --config wharf.toml --dry-run
///   wharf release --config wharf.toml --set 'tags=["v1.2.0","1.2","latest"]' --output json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ReleaseArgs {
    /// The release configuration (see docs/release-config.md).
    #[arg(long, short = 'c', default_value = "wharf.toml", value_name = "FILE")]
    pub config: PathBuf,

    /// Override a config value (repeatable), e.g. --set signing.key=env://RELEASE_KEY.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,

    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// How many transfers and signatures at once.
    #[arg(long, short = 'j', default_value_t = default_jobs(), value_name = "N")]
    pub jobs: usize,

    #[command(flatten)]
    pub tuf: TufArgs,
}

pub fn load_config(path: &std::path::Path, sets: &[String]) -> Result<ReleaseConfig> {
    let text = if path.as_os_str() == "-" {
        EXAMPLE.to_string()
    } else {
        crate::files::read_bounded_text(path, crate::files::CONFIG_LIMIT, "release config")?
    };
    let env = std::env::vars().collect();
    ReleaseConfig::load(&text, &path.display().to_string(), &env, sets)
}

fn policy(config: &ReleaseConfig, password: &PasswordArgs) -> Result<Policy> {
    let v = &config.verify;
    if let Some(key) = &v.key {
        return Ok(Policy::Key(load_public_key(key, password)?));
    }
    if let Some(key) = &config.signing.key {
        return Ok(Policy::Key(load_private_key(key, password)?.public_key()));
    }
    let regex = |r: &Option<String>| r.as_deref().map(FullMatch::new).transpose();
    let mut github_claims = Vec::new();
    if let Some(repo) = &v.certificate_github_workflow_repository {
        github_claims.push(("1.3.6.1.4.1.57264.1.5".to_string(), repo.clone()));
    }
    Ok(Policy::Identity(IdentityPolicy {
        identity: v.certificate_identity.clone(),
        identity_regexp: regex(&v.certificate_identity_regexp)
            .context("[verify] certificate_identity_regexp")?,
        issuer: v.certificate_oidc_issuer.clone(),
        issuer_regexp: regex(&v.certificate_oidc_issuer_regexp)
            .context("[verify] certificate_oidc_issuer_regexp")?,
        github_claims,
    }))
}

pub async fn run(args: &ReleaseArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let config = load_config(&args.config, &args.sets)?;
    if args.dry_run {
        let steps = plan(&config);
        match global.output {
            OutputFormat::Json => println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"plan": steps, "config": config})
                )?
            ),
            OutputFormat::Text => {
                println!("wharf release plan ({}):", args.config.display());
                for (i, s) in steps.iter().enumerate() {
                    println!("  {}. {s}", i + 1);
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let password = PasswordArgs {
        password_file: config.signing.password_file.as_ref().map(PathBuf::from),
    };
    let key_without_tlog = config.signing.key.is_some()
        && !config.signing.tlog_upload
        && config.verify.insecure_ignore_tlog;
    let trust = match &config.signing.trusted_root {
        Some(path) => TrustRoot::load(std::path::Path::new(path))?,
        // A key without the transparency log uses no Sigstore trust material: no TUF.
        None if key_without_tlog => TrustRoot::public_good(),
        None => {
            if config.signing.key.is_none() {
                super::cosign_env::refuse_sigstore_root_file(None)?;
            }
            super::trust::trust_root(None, &args.tuf).await?
        }
    };
    let policy = policy(&config, &password)?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    let signer: Box<dyn Signer> = match &config.signing.key {
        Some(key) => Box::new(KeySigner::new(load_private_key(key, &password)?)),
        None => Box::new(
            KeylessSigner::obtain(
                &http,
                &config.signing.fulcio_url,
                &TokenSource {
                    explicit: config
                        .signing
                        .identity_token
                        .clone()
                        .or_else(|| std::env::var("SIGSTORE_ID_TOKEN").ok()),
                    audience: "sigstore".into(),
                },
                &trust,
                config.verify.insecure_ignore_sct,
            )
            .await?,
        ),
    };
    let tlog = config.signing.tlog_upload.then(|| Tlog {
        http: http.clone(),
        rekor_url: config.signing.rekor_url.clone(),
    });
    let provenance = if config.attestations.provenance {
        let env = std::env::vars().collect();
        Some(serde_json::to_vec_pretty(
            &provenance::github_actions_predicate(&env)?,
        )?)
    } else {
        None
    };
    // --registry-username is for the registry the release publishes to; mirrors get theirs
    // from --registry-auth-file or the Docker config.
    let primary = crate::oci::ImageRef::parse(&config.repository)?;
    let mut options = global.registry_options(CredentialTargets::image(&primary))?;
    if !config.insecure_registries.is_empty() {
        options.insecure = match options.insecure {
            InsecureRegistries::All => InsecureRegistries::All,
            InsecureRegistries::None => {
                InsecureRegistries::Hosts(config.insecure_registries.clone())
            }
            InsecureRegistries::Hosts(mut h) => {
                h.extend(config.insecure_registries.iter().cloned());
                InsecureRegistries::Hosts(h)
            }
        };
    }
    let stores = Stores::new(options)?;
    let inputs = ReleaseInputs {
        config: &config,
        signer: signer.as_ref(),
        tlog: tlog.as_ref(),
        policy: &policy,
        trust: &trust,
        provenance,
        jobs: args.jobs,
    };
    let quiet = global.quiet || global.output == OutputFormat::Json;
    let report = release(&stores, &inputs, &global.progress(), &|s| {
        if !quiet {
            eprintln!("wharf: {s}");
        }
    })
    .await?;
    write_github(&config, &report)?;
    match global.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text if !global.quiet => print!("{}", table(&config, &report)),
        OutputFormat::Text => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn table(config: &ReleaseConfig, report: &ReleaseReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "released {}", report.primary.reference);
    for (step, status) in &report.steps {
        let _ = writeln!(s, "  {step:<28} {status}");
    }
    let _ = writeln!(s, "\n  {:<14} {:<72} location", "platform", "digest");
    let locations: Vec<&str> = std::iter::once(report.primary.repository.as_str())
        .chain(report.mirrors.iter().map(|m| m.repository.as_str()))
        .collect();
    for location in &locations {
        let _ = writeln!(s, "  {:<14} {:<72} {location}", "index", report.digest);
        for m in &report.manifests {
            let _ = writeln!(s, "  {:<14} {:<72} {location}", m.platform, m.digest);
        }
    }
    let _ = writeln!(s, "\nverify with:");
    for (_, cmd) in config.verify_commands(&report.primary.reference) {
        let _ = writeln!(s, "  {cmd}");
    }
    s
}

fn write_github(config: &ReleaseConfig, report: &ReleaseReport) -> Result<()> {
    let mut outputs = vec![
        ("digest".to_string(), report.digest.clone()),
        ("reference".to_string(), report.primary.reference.clone()),
    ];
    for m in &report.manifests {
        outputs.push((
            format!("digest-{}", m.platform.replace('/', "-")),
            m.digest.clone(),
        ));
    }
    for (i, m) in report.mirrors.iter().enumerate() {
        outputs.push((format!("mirror-{}-reference", i + 1), m.reference.clone()));
    }
    github::set_outputs(&outputs)?;
    let mut md = format!(
        "### wharf release\n\nReleased `{}`\n\n| platform | digest |\n|---|---|\n",
        report.primary.reference
    );
    for m in &report.manifests {
        let _ = writeln!(md, "| {} | `{}` |", m.platform, m.digest);
    }
    if !report.mirrors.is_empty() {
        let _ = writeln!(md, "\nMirrors (verified):\n");
        for m in &report.mirrors {
            let _ = writeln!(md, "- `{}`", m.reference);
        }
    }
    let _ = writeln!(md, "\nVerify with:\n\n```sh");
    for (_, cmd) in config.verify_commands(&report.primary.reference) {
        let _ = writeln!(md, "{cmd}");
    }
    let _ = writeln!(md, "```");
    github::append_summary(&md)
}
