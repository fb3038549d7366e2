//! SLSA provenance v1 predicates describing a GitHub Actions build (pure: environment in,
//! JSON out).

use anyhow::{bail, Result};
use std::collections::BTreeMap;

pub const BUILD_TYPE: &str =
    "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1";

/// The GitHub Actions variables a provenance statement is built from.
pub const REQUIRED: [&str; 6] = [
    "GITHUB_REPOSITORY",
    "GITHUB_SHA",
    "GITHUB_REF",
    "GITHUB_WORKFLOW_REF",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
];

/// Builds the predicate from Actions variables (`env`), e.g. `std::env::vars()`.
pub fn github_actions_predicate(env: &BTreeMap<String, String>) -> Result<serde_json::Value> {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|k| env.get(*k).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "provenance needs the GitHub Actions environment; missing: {} (run this inside a GitHub Actions job)",
            missing.join(", ")
        );
    }
    let get = |k: &str| env.get(k).cloned().unwrap_or_default();
    let server = env
        .get("GITHUB_SERVER_URL")
        .cloned()
        .unwrap_or_else(|| "https://github.com".into());
    let repository = get("GITHUB_REPOSITORY");
    let workflow_ref = get("GITHUB_WORKFLOW_REF");
    // GITHUB_WORKFLOW_REF is OWNER/REPO/PATH@REF.
    let (workflow_path, workflow_git_ref) = match workflow_ref.split_once('@') {
        Some((path, r)) => (
            path.strip_prefix(&format!("{repository}/"))
                .unwrap_or(path)
                .to_string(),
            r.to_string(),
        ),
        None => (workflow_ref.clone(), get("GITHUB_REF")),
    };
    let mut internal = serde_json::Map::new();
    for (key, var) in [
        ("event_name", "GITHUB_EVENT_NAME"),
        ("repository_id", "GITHUB_REPOSITORY_ID"),
        ("repository_owner_id", "GITHUB_REPOSITORY_OWNER_ID"),
        ("runner_environment", "RUNNER_ENVIRONMENT"),
    ] {
        if let Some(v) = env.get(var) {
            internal.insert(key.into(), v.clone().into());
        }
    }
    Ok(serde_json::json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "workflow": {
                    "ref": workflow_git_ref,
                    "repository": format!("{server}/{repository}"),
                    "path": workflow_path,
                }
            },
            "internalParameters": { "github": internal },
            "resolvedDependencies": [{
                "uri": format!("git+{server}/{repository}@{}", get("GITHUB_REF")),
                "digest": { "gitCommit": get("GITHUB_SHA") },
            }],
        },
        "runDetails": {
            "builder": { "id": format!("{server}/{workflow_ref}") },
            "metadata": {
                "invocationId": format!(
                    "{server}/{repository}/actions/runs/{}/attempts/{}",
                    get("GITHUB_RUN_ID"),
                    get("GITHUB_RUN_ATTEMPT")
                ),
            },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [
            ("GITHUB_REPOSITORY", "acme/app"),
            ("GITHUB_SHA", "0123abcd"),
            ("GITHUB_REF", "refs/tags/v1.2.0"),
            (
                "GITHUB_WORKFLOW_REF",
                "acme/app/.github/workflows/release.yml@refs/tags/v1.2.0",
            ),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("RUNNER_ENVIRONMENT", "github-hosted"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn predicate_from_actions_env() {
        let p = github_actions_predicate(&env()).unwrap();
        assert_eq!(
            p["buildDefinition"]["externalParameters"]["workflow"]["path"],
            ".github/workflows/release.yml"
        );
        assert_eq!(
            p["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"],
            "0123abcd"
        );
        assert_eq!(
            p["runDetails"]["builder"]["id"],
            "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
        );
        assert_eq!(
            p["runDetails"]["metadata"]["invocationId"],
            "https://github.com/acme/app/actions/runs/42/attempts/1"
        );
        assert_eq!(
            p["buildDefinition"]["internalParameters"]["github"]["runner_environment"],
            "github-hosted"
        );
    }

    #[test]
    fn outside_actions_is_refused() {
        let err = github_actions_predicate(&BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("GITHUB_SHA"), "{err}");
    }
}
