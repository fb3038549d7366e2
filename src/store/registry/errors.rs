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

/// [`registry_error`] for a response whose body was already read.
pub fn registry_error_text(
    status: StatusCode,
    text: &str,
    registry: &str,
    what: &str,
) -> anyhow::Error {
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
    let parsed = serde_json::from_str::<Errors>(text).ok();
    let codes: Vec<String> = parsed
        .iter()
        .flat_map(|e| e.errors.iter().filter_map(|i| i.code.clone()))
        .collect();
    let detail = match parsed {
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
    let message = if status == StatusCode::UNAUTHORIZED {
        format!("{registry} refused {what}: 401 Unauthorized (wrong credentials, or no access to this repository){detail}")
    } else {
        format!("{registry} refused {what}: {status}{detail}")
    };
    anyhow::Error::new(RegistryError {
        status: status.as_u16(),
        codes: codes.iter().map(|c| text::excerpt(c, 64)).collect(),
        message,
    })
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
}
