//! What `wharf release` reports: the released digests and where they are, what each step
//! did, and the commands that verify it; and its plan (`--dry-run`).

use super::config::ReleaseConfig;
use crate::report::Report;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Serialize, Clone)]
pub struct PlatformDigest {
    pub platform: String,
    pub digest: String,
}

#[derive(Debug, Serialize)]
pub struct Location {
    pub repository: String,
    pub reference: String,
    pub tags: Vec<String>,
    pub verified: bool,
}

#[derive(Debug, Serialize)]
pub struct ReleaseReport {
    pub digest: String,
    pub manifests: Vec<PlatformDigest>,
    pub primary: Location,
    pub mirrors: Vec<Location>,
    /// What each step did: "done", or "already done" on a rerun.
    pub steps: Vec<(String, String)>,
    /// The commands that verify the release under its policy, as the releasing machine runs
    /// them.
    #[serde(skip)]
    pub verify_commands: Vec<String>,
}

impl Report for ReleaseReport {
    fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "released {}", self.primary.reference);
        for (step, status) in &self.steps {
            let _ = writeln!(s, "  {step:<28} {status}");
        }
        let _ = writeln!(s, "\n  {:<14} {:<72} location", "platform", "digest");
        let locations = std::iter::once(&self.primary).chain(&self.mirrors);
        for location in locations.map(|l| l.repository.as_str()) {
            let _ = writeln!(s, "  {:<14} {:<72} {location}", "index", self.digest);
            for m in &self.manifests {
                let _ = writeln!(s, "  {:<14} {:<72} {location}", m.platform, m.digest);
            }
        }
        let _ = writeln!(s, "\nverify with:");
        for cmd in &self.verify_commands {
            let _ = writeln!(s, "  {cmd}");
        }
        s
    }

    fn github_outputs(&self) -> Vec<(String, String)> {
        let mut outputs = vec![
            ("digest".to_string(), self.digest.clone()),
            ("reference".to_string(), self.primary.reference.clone()),
        ];
        for m in &self.manifests {
            outputs.push((
                format!("digest-{}", m.platform.replace('/', "-")),
                m.digest.clone(),
            ));
        }
        for (i, m) in self.mirrors.iter().enumerate() {
            outputs.push((format!("mirror-{}-reference", i + 1), m.reference.clone()));
        }
        outputs
    }

    fn github_summary(&self) -> Option<String> {
        let mut md = format!(
            "### wharf release\n\nReleased `{}`\n\n| platform | digest |\n|---|---|\n",
            self.primary.reference
        );
        for m in &self.manifests {
            let _ = writeln!(md, "| {} | `{}` |", m.platform, m.digest);
        }
        if !self.mirrors.is_empty() {
            let _ = writeln!(md, "\nMirrors (verified):\n");
            for m in &self.mirrors {
                let _ = writeln!(md, "- `{}`", m.reference);
            }
        }
        let _ = writeln!(md, "\nVerify with:\n\n```sh");
        for cmd in &self.verify_commands {
            let _ = writeln!(md, "{cmd}");
        }
        let _ = writeln!(md, "```");
        Some(md)
    }
}

/// The plan `--dry-run` prints, with the config it was made from.
pub struct Plan {
    /// Where the config came from, as the user named it.
    pub origin: String,
    pub steps: Vec<String>,
    pub config: ReleaseConfig,
}

impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Built as a JSON value, as it always was: its keys, the config's too, sorted.
        serde_json::json!({"plan": self.steps, "config": self.config}).serialize(serializer)
    }
}

impl Report for Plan {
    /// Printed even with `--quiet`: the plan is what was asked for.
    fn result(&self) -> String {
        let mut s = format!("wharf release plan ({}):\n", self.origin);
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(s, "  {}. {step}", i + 1);
        }
        s
    }
}
