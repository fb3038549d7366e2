//! Transparency log checkpoints: a signed note (C2SP `signed-note`) whose text is a checkpoint
//! (C2SP `tlog-checkpoint`): origin, tree size, root hash, optional extension lines; then a
//! blank line and one `— NAME BASE64(KEYHASH[4] || SIGNATURE)` line per signature, the log's
//! own and any witnesses' cosignatures (C2SP `tlog-cosignature`).

use super::pubkey::VerifyingKey;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// Most signature lines a note may carry (Go's `note` package has the same limit).
const MAX_SIGNATURES: usize = 100;
/// Largest checkpoint text read.
const MAX_TEXT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root_hash: [u8; 32],
    /// Lines after the root hash (Rekor v1 puts `Timestamp: ...` there).
    pub extensions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_hint: [u8; 4],
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The signed text: every line up to and including the root hash's and extensions'.
    pub body: String,
    pub checkpoint: Checkpoint,
    pub signatures: Vec<NoteSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("the checkpoint's origin {found:?} is not the log's ({expected:?})")]
    WrongOrigin { found: String, expected: String },
    #[error("the checkpoint carries no signature by the log {0}")]
    NotSignedByLog(String),
    #[error("the log's signature on the checkpoint does not verify (an altered checkpoint)")]
    BadSignature,
}

fn malformed<T>(why: impl Into<String>) -> Result<T, CheckpointError> {
    Err(CheckpointError::Malformed(why.into()))
}

/// Parses a signed checkpoint note.
pub fn parse(text: &str) -> Result<SignedCheckpoint, CheckpointError> {
    if text.len() > MAX_TEXT {
        return malformed(format!("{} bytes, more than {MAX_TEXT}", text.len()));
    }
    let Some(split) = text.find("\n\n") else {
        return malformed("no blank line between the text and its signatures");
    };
    let body = &text[..split + 1];
    let signature_block = &text[split + 2..];
    let lines: Vec<&str> = body[..body.len() - 1].split('\n').collect();
    if lines.len() < 3 {
        return malformed(format!(
            "{} line(s) of text; origin, size and root hash are required",
            lines.len()
        ));
    }
    let origin = lines[0];
    if origin.is_empty() || origin.chars().any(char::is_control) {
        return malformed("empty origin line");
    }
    let size_line = lines[1];
    let valid_number = !size_line.is_empty()
        && size_line.bytes().all(|b| b.is_ascii_digit())
        && (size_line == "0" || !size_line.starts_with('0'));
    let size: u64 = match size_line.parse() {
        Ok(n) if valid_number => n,
        _ => return malformed(format!("the tree size {size_line:?} is not a number")),
    };
    let root_hash: [u8; 32] = match B64.decode(lines[2]).map(<[u8; 32]>::try_from) {
        Ok(Ok(h)) => h,
        _ => return malformed("the root hash is not 32 bytes of base64"),
    };
    if signature_block.is_empty() {
        return malformed("no signature lines");
    }
    if !signature_block.ends_with('\n') {
        return malformed("the signature block does not end with a newline");
    }
    let mut signatures = Vec::new();
    for line in signature_block[..signature_block.len() - 1].split('\n') {
        if signatures.len() == MAX_SIGNATURES {
            return malformed(format!("more than {MAX_SIGNATURES} signature lines"));
        }
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return malformed(format!(
                "signature line {line:?} does not start with an em dash"
            ));
        };
        let Some((name, b64)) = rest.split_once(' ') else {
            return malformed("a signature line has no signature");
        };
        if name.is_empty() || b64.contains(' ') {
            return malformed("a signature line is not `— NAME SIGNATURE`");
        }
        let raw = B64
            .decode(b64)
            .map_err(|_| CheckpointError::Malformed("a signature is not base64".into()))?;
        if raw.len() < 5 {
            return malformed("a signature is too short");
        }
        signatures.push(NoteSignature {
            name: name.to_string(),
            key_hint: raw[..4].try_into().expect("4 bytes"),
            signature: raw[4..].to_vec(),
        });
    }
    Ok(SignedCheckpoint {
        body: body.to_string(),
        checkpoint: Checkpoint {
            origin: origin.to_string(),
            size,
            root_hash,
            extensions: lines[3..].iter().map(|l| l.to_string()).collect(),
        },
        signatures,
    })
}

/// Which signature line names count as the log's.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// Rekor v2: the origin line is the log's host name and the log signs under it.
    Exactly(&'a str),
    /// Rekor v1: the origin is `NAME - TREE_ID` (or `NAME`) and the log signs as `NAME`.
    SignerPrefix,
}

impl SignedCheckpoint {
    /// Checks the log whose id is `log_id` signed this checkpoint with `key`. Signature lines
    /// from other keys (witness cosignatures, other logs) are ignored: the trusted root
    /// lists no witness keys, so they can neither add nor take away trust.
    pub fn verify(
        &self,
        log_id: &[u8],
        key: &VerifyingKey,
        origin: Origin<'_>,
    ) -> Result<(), CheckpointError> {
        let found = &self.checkpoint.origin;
        if let Origin::Exactly(expected) = origin {
            if found != expected {
                return Err(CheckpointError::WrongOrigin {
                    found: found.clone(),
                    expected: expected.to_string(),
                });
            }
        }
        let names_log = |name: &str| match origin {
            Origin::Exactly(_) => name == found,
            Origin::SignerPrefix => {
                name == found
                    || found
                        .strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(" - "))
            }
        };
        let hint = log_id.get(..4).unwrap_or_default();
        let candidates: Vec<&NoteSignature> = self
            .signatures
            .iter()
            .filter(|s| s.key_hint == hint && names_log(&s.name))
            .collect();
        if candidates.is_empty() {
            return Err(CheckpointError::NotSignedByLog(found.clone()));
        }
        let hash = key.kind().default_hash();
        if candidates
            .iter()
            .any(|s| key.verify(hash, self.body.as_bytes(), &s.signature).is_ok())
        {
            Ok(())
        } else {
            Err(CheckpointError::BadSignature)
        }
    }
}

/// What a Rekor v2 log's checkpoints name as origin: its base URL's host.
pub fn origin_of(base_url: &str) -> &str {
    let rest = base_url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(base_url);
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    // A port is not part of the origin (Go's url.Hostname()).
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => host_port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rekor_v1_checkpoint() {
        let text = "rekor.sigstore.dev - 2605736670972794746\n23083062\ndauhleYK4YyAdxwwDtR0l0KnSOWZdG2bwqHftlanvcI=\nTimestamp: 1689177396617352539\n\n\u{2014} rekor.sigstore.dev wNI9ajBFAiBxaGyEtxkzFLkaCSEJqFuSS3dJjEZCNiyByVs1CNVQ8gIhAOoNnXtmMtTctV2oRnSRUZAo4EWUYPK/vBsqOzAU6TMs\n";
        let c = parse(text).unwrap();
        assert_eq!(
            c.checkpoint.origin,
            "rekor.sigstore.dev - 2605736670972794746"
        );
        assert_eq!(c.checkpoint.size, 23083062);
        assert_eq!(
            c.checkpoint.extensions,
            vec!["Timestamp: 1689177396617352539"]
        );
        assert_eq!(c.signatures.len(), 1);
        assert_eq!(c.signatures[0].name, "rekor.sigstore.dev");
        assert!(c.body.ends_with("1689177396617352539\n"));
    }

    #[test]
    fn malformed_checkpoints() {
        let root = B64.encode([0u8; 32]);
        let sig = format!("\u{2014} log {}\n", B64.encode([1u8; 70]));
        for bad in [
            format!("{root}\n\n{sig}"),
            format!("origin\n{root}\n\n{sig}"),
            format!("origin\n5\n\n{sig}"),
            format!("origin\n05\n{root}\n\n{sig}"),
            format!("origin\n5\n{root}\n\n"),
            format!("origin\n5\n{root}\n{sig}"),
            format!("origin\n5\n{root}\n\n- log AAAA\n"),
        ] {
            assert!(
                matches!(parse(&bad), Err(CheckpointError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(parse(&format!("origin\n5\n{root}\n\n{sig}")).is_ok());
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://log2025-1.rekor.sigstore.dev"),
            "log2025-1.rekor.sigstore.dev"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080/x"), "127.0.0.1");
        assert_eq!(origin_of("rekor.example"), "rekor.example");
    }
}
