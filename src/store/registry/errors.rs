//! Registry failures as errors: the distribution error codes a registry answered with, its own
//! words (escaped: they are a peer's text and end up on stderr and in CI logs), and connection
//! failures with a hint where one helps.

use super::capabilities::DocumentKind;
use crate::store::body::read_prefix;
use crate::text;
use anyhow::anyhow;
use reqwest::{Method, Response, StatusCode};

/// A request the registry answered with an error, with the distribution error codes it gave
/// (`MANIFEST_BLOB_UNKNOWN`, `NAME_UNKNOWN`, ...), so callers can react to specific ones.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    pub status: u16,
    pub codes: Vec<String>,
    pub message: String,
}

impl RegistryError {
    /// Whether `err` is a registry's complaint that something a manifest references is
    /// missing: transient while a concurrent writer relinks the same blob.
    pub fn is_blob_unknown(err: &anyhow::Error) -> bool {
        err.chain().any(|e| {
            e.downcast_ref::<RegistryError>().is_some_and(|r| {
                r.codes.iter().any(|c| {
                    c == "MANIFEST_BLOB_UNKNOWN" || c == "BLOB_UNKNOWN" || c == "DIGEST_INVALID"
                })
            })
        })
    }
}

/// How much of a registry's own words an error shows.
const DETAIL_CHARS: usize = 200;

/// The registry's own words about a failed request, from its JSON error body (of which at
/// most [`DocumentKind::Error`]'s limit is read).
pub async fn registry_error(response: Response, registry: &str, what: &str) -> anyhow::Error {
    let status = response.status();
    let body = read_prefix(response, DocumentKind::Error.limit()).await;
    registry_error_text(status, &String::from_utf8_lossy(&body), registry, what)
}

/// A registry's 404 to the start of an upload: the repository does not exist and pushing
/// did not create it. ECR's answer says how to create it there.
pub async fn missing_repository(
    response: Response,
    registry: &str,
    repository: &str,
) -> anyhow::Error {
    let status = response.status();
    let body = read_prefix(response, DocumentKind::Error.limit()).await;
    let text = String::from_utf8_lossy(&body);
    let errors = parse_errors(&text);
    if ecr::remedy(registry, &said(&errors)).is_some() {
        return registry_error_text(
            status,
            &text,
            registry,
            &format!("an upload to {repository}"),
        );
    }
    anyhow!(
        "repository {repository} does not exist and {registry} did not create it on push \
         (create it first)"
    )
}

/// A distribution error answer: `{"errors": [{"code", "message", "detail"}]}`.
#[derive(serde::Deserialize)]
struct Errors {
    errors: Vec<ErrorItem>,
}

#[derive(serde::Deserialize)]
struct ErrorItem {
    code: Option<String>,
    message: Option<String>,
    detail: Option<serde_json::Value>,
}

/// The error answer `text` is, if it is one.
fn parse_errors(text: &str) -> Option<Errors> {
    serde_json::from_str(text).ok()
}

/// `(code, message)` of every error in `errors`.
fn said(errors: &Option<Errors>) -> Vec<(&str, &str)> {
    errors
        .iter()
        .flat_map(|e| e.errors.iter())
        .map(|i| {
            (
                i.code.as_deref().unwrap_or_default(),
                i.message.as_deref().unwrap_or_default(),
            )
        })
        .collect()
}

/// [`registry_error`] for a response whose body was already read.
pub fn registry_error_text(
    status: StatusCode,
    text: &str,
    registry: &str,
    what: &str,
) -> anyhow::Error {
    let parsed = parse_errors(text);
    let codes: Vec<String> = parsed
        .iter()
        .flat_map(|e| e.errors.iter().filter_map(|i| i.code.clone()))
        .collect();
    let detail = match &parsed {
        Some(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|i| {
                let mut s = i.code.clone().unwrap_or_default();
                if let Some(m) = &i.message {
                    s.push_str(&format!(": {m}"));
                }
                match &i.detail {
                    Some(serde_json::Value::String(d)) if !d.is_empty() => {
                        s.push_str(&format!(" ({d})"))
                    }
                    Some(v) if !v.is_null() && v.to_string().len() < DETAIL_CHARS => {
                        s.push_str(&format!(" ({v})"))
                    }
                    _ => {}
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => text.to_string(),
    };
    // The registry's words are a peer's: cut, and escaped so they cannot start a line.
    let detail = text::excerpt(&detail, DETAIL_CHARS * 2);
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    let mut message = if status == StatusCode::UNAUTHORIZED {
        format!("{registry} refused {what}: 401 Unauthorized (wrong credentials, or no access to this repository){detail}")
    } else {
        format!("{registry} refused {what}: {status}{detail}")
    };
    if let Some(remedy) = ecr::remedy(registry, &said(&parsed)) {
        message.push_str(if message.ends_with('.') { " " } else { ". " });
        message.push_str(&remedy);
    }
    anyhow::Error::new(RegistryError {
        status: status.as_u16(),
        codes: codes.iter().map(|c| text::excerpt(c, 64)).collect(),
        message,
    })
}

/// Amazon ECR's answers that wharf can say more about than ECR does: a repository that does
/// not exist (ECR creates none on push unless told to) and a tag an IMMUTABLE repository will
/// not let be rewritten (the cosign tag scheme rewrites `.sig` and `.att` tags).
///
/// An answer is taken for ECR's when it carries the distribution error code and either comes
/// from an ECR host or says it in ECR's own words. The code alone is not enough (distribution
/// answers `NAME_UNKNOWN` and `TAG_INVALID` for other reasons, and other registries' remedies
/// differ), and the host alone would miss ECR behind a proxy or a custom name, and every test,
/// which can only point wharf at loopback.
mod ecr {
    use crate::text;

    /// The region of an ECR private registry host: `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com`
    /// (`.com.cn` in China) or the dual-stack `ACCOUNT.dkr-ecr[-fips].REGION.on.aws`.
    pub fn region(registry: &str) -> Option<&str> {
        let host = registry.split(':').next().unwrap_or(registry);
        let labels: Vec<&str> = host.split('.').collect();
        let account = labels.first()?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match labels.as_slice() {
            [_, "dkr", "ecr" | "ecr-fips", region, "amazonaws", "com"]
            | [_, "dkr", "ecr" | "ecr-fips", region, "amazonaws", "com", "cn"]
            | [_, "dkr-ecr" | "dkr-ecr-fips", region, "on", "aws"] => Some(region),
            _ => None,
        }
    }

    /// The text between `'` after `prefix` in `message`.
    fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
        let rest = &message[message.find(prefix)? + prefix.len()..];
        rest.split_once('\'').map(|(quoted, _)| quoted)
    }

    /// `name` if it can stand in a shell command as a repository name, else a placeholder:
    /// the name comes from the registry's answer.
    fn shell_safe(name: Option<&str>, placeholder: &'static str) -> String {
        match name {
            Some(n)
                if !n.is_empty()
                    && n.len() <= 256
                    && n.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)
                    }) =>
            {
                n.to_string()
            }
            _ => placeholder.to_string(),
        }
    }

    /// What to do about an ECR answer with these `(code, message)` errors, if wharf knows.
    pub fn remedy(registry: &str, errors: &[(&str, &str)]) -> Option<String> {
        let region = region(registry);
        errors.iter().find_map(|&(code, message)| match code {
            "NAME_UNKNOWN" => missing_repository(region, message),
            "TAG_INVALID" => immutable_tag(region.is_some(), message),
            _ => None,
        })
    }

    fn missing_repository(region: Option<&str>, message: &str) -> Option<String> {
        let name = quoted_after(message, "The repository with name '");
        let ecr_words =
            name.is_some() && message.contains("' does not exist in the registry with id '");
        if region.is_none() && !ecr_words {
            return None;
        }
        let name = shell_safe(name, "REPOSITORY");
        let region = region
            .map(|r| format!(" --region {}", text::excerpt(r, 40)))
            .unwrap_or_default();
        Some(format!(
            "ECR creates no repository on push: create it (`aws ecr create-repository \
             --repository-name {name}{region}`), or have ECR create repositories on first push \
             with a repository creation template (`aws ecr create-repository-creation-template \
             --prefix ROOT --applied-for CREATE_ON_PUSH{region}`)"
        ))
    }

    fn immutable_tag(ecr_host: bool, message: &str) -> Option<String> {
        let ecr_words =
            message.contains("cannot be overwritten because the repository is immutable");
        let immutable =
            ecr_words || (ecr_host && message.to_ascii_lowercase().contains("immutable"));
        if !immutable {
            return None;
        }
        let tag = quoted_after(message, "The image tag '");
        Some(match tag {
            // A tag of wharf's own (`sha256-<hex>.sig`, `.att`, a fallback index) or of the
            // user's (a release tag).
            Some(tag) if !tag.starts_with("sha256-") => format!(
                "This ECR repository has IMMUTABLE tags and {} already names another manifest: \
                 publish under a new tag",
                text::excerpt(tag, 80)
            ),
            _ => format!(
                "This ECR repository has IMMUTABLE tags, and the cosign tag scheme \
                 (--bundle-format legacy) adds each signature or attestation by rewriting {}: \
                 sign and attest with --bundle-format bundle, which stores them as OCI 1.1 \
                 referrers (ECR serves the referrers API) and rewrites no tag, or exempt \
                 `sha256-*` tags from the repository's tag immutability with an exclusion filter",
                if tag.is_some() {
                    "that tag"
                } else {
                    "a `sha256-<digest>.sig` or `.att` tag"
                }
            ),
        })
    }
}

pub fn connection_error(
    registry: &str,
    method: &Method,
    url: &str,
    e: reqwest::Error,
) -> anyhow::Error {
    let mut cause = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let cause = if cause.is_empty() {
        e.to_string()
    } else {
        cause
    };
    let hint = if url.starts_with("https://") && cause.to_lowercase().contains("certificate") {
        " (for a registry without trusted TLS, pass --insecure-registry HOST)"
    } else {
        ""
    };
    // The URL may be one the registry handed out (an upload location): a peer's text too.
    let url = text::one_line(url);
    anyhow!("cannot reach registry {registry} ({method} {url}): {cause}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_cannot_start_a_line_of_its_own() {
        let body = r#"{"errors":[{"code":"DENIED","message":"no\n::add-mask::secret\r\n::stop-commands::x","detail":"a\u001b[2Jb"}]}"#;
        let err = registry_error_text(StatusCode::FORBIDDEN, body, "r.example", "reading x");
        let message = err.to_string();
        assert!(!message.chars().any(|c| c.is_control()), "{message:?}");
        assert!(message.contains("no\\n::add-mask::secret"), "{message}");
        let err = registry_error_text(StatusCode::BAD_GATEWAY, "<html>\n\n</html>", "r", "x");
        assert_eq!(
            err.to_string(),
            "r refused x: 502 Bad Gateway: <html>\\n\\n</html>"
        );
    }

    #[test]
    fn long_registry_words_are_cut() {
        let long = "x".repeat(10_000);
        let err = registry_error_text(StatusCode::BAD_REQUEST, &long, "r", "y");
        assert!(err.to_string().len() < 600);
    }

    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    fn refused(status: StatusCode, registry: &str, code: &str, message: &str) -> String {
        let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
        registry_error_text(status, &body.to_string(), registry, "x").to_string()
    }

    #[test]
    fn ecr_hosts_are_known_by_name() {
        assert_eq!(ecr::region(ECR), Some("eu-west-1"));
        assert_eq!(
            ecr::region("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com:443"),
            Some("us-gov-west-1")
        );
        assert_eq!(
            ecr::region("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            Some("cn-north-1")
        );
        assert_eq!(
            ecr::region("123456789012.dkr-ecr.eu-west-1.on.aws"),
            Some("eu-west-1")
        );
        assert_eq!(ecr::region("public.ecr.aws"), None);
        assert_eq!(ecr::region("12345.dkr.ecr.eu-west-1.amazonaws.com"), None);
        assert_eq!(
            ecr::region("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil"),
            None
        );
        assert_eq!(ecr::region("ghcr.io"), None);
    }

    #[test]
    fn a_missing_ecr_repository_says_how_to_create_it() {
        let words = "The repository with name 'acme/app' does not exist in the registry with id '123456789012'";
        let message = refused(StatusCode::NOT_FOUND, ECR, "NAME_UNKNOWN", words);
        assert!(message.contains(words), "{message}");
        assert!(
            message.contains(
                "`aws ecr create-repository --repository-name acme/app --region eu-west-1`"
            ),
            "{message}"
        );
        assert!(message.contains("CREATE_ON_PUSH"), "{message}");
        // ECR's words from elsewhere (a proxy in front of ECR, a test on loopback).
        let message = refused(
            StatusCode::NOT_FOUND,
            "127.0.0.1:5000",
            "NAME_UNKNOWN",
            words,
        );
        assert!(message.contains("--repository-name acme/app`"), "{message}");
        // An ECR host with other words.
        let message = refused(
            StatusCode::NOT_FOUND,
            ECR,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
        assert!(
            message.contains("--repository-name REPOSITORY --region eu-west-1"),
            "{message}"
        );
        // Distribution's own NAME_UNKNOWN elsewhere gets no ECR advice.
        let message = refused(
            StatusCode::NOT_FOUND,
            "registry.example",
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
        assert!(!message.contains("ECR"), "{message}");
        // A name that could not stand in a shell command is not put in one.
        let message = refused(
            StatusCode::NOT_FOUND,
            ECR,
            "NAME_UNKNOWN",
            "The repository with name 'a;rm -rf ~' does not exist in the registry with id '1'",
        );
        assert!(
            message.contains("--repository-name REPOSITORY"),
            "{message}"
        );
    }

    #[test]
    fn an_immutable_ecr_tag_points_to_the_bundle_format_for_signatures() {
        let sig = format!("sha256-{}.sig", "a".repeat(64));
        let words = format!(
            "The image tag '{sig}' already exists in the 'app' repository and cannot be \
             overwritten because the repository is immutable."
        );
        for registry in [ECR, "127.0.0.1:5000"] {
            let message = refused(StatusCode::BAD_REQUEST, registry, "TAG_INVALID", &words);
            assert!(
                message.contains("immutable. This ECR repository"),
                "{message}"
            );
            assert!(message.contains("--bundle-format bundle"), "{message}");
            assert!(message.contains(&sig), "{message}");
        }
        let release = "The image tag 'v1' already exists in the 'app' repository and cannot be \
             overwritten because the repository is immutable.";
        let message = refused(StatusCode::BAD_REQUEST, ECR, "TAG_INVALID", release);
        assert!(
            message.contains("v1 already names another manifest"),
            "{message}"
        );
        assert!(!message.contains("--bundle-format"), "{message}");
        // Distribution's TAG_INVALID is about something else.
        let message = refused(
            StatusCode::BAD_REQUEST,
            ECR,
            "TAG_INVALID",
            "manifest tag did not match URI",
        );
        assert!(!message.contains("IMMUTABLE"), "{message}");
    }
}
