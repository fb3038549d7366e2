//! PEM read as leniently as Go's `encoding/pem`, which is what cosign, Fulcio and Rekor use:
//! base64 lines of any length (the Sigstore mock and some CAs write one long line), CRLF line
//! ends, trailing blanks, RFC 1421 headers, and text between blocks. Strict about what makes a
//! block: a `-----BEGIN L-----` line, base64, and an `-----END L-----` line with the same label.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// One PEM block: its label (`CERTIFICATE`, `PUBLIC KEY`, ...) and decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// Why PEM text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("no PEM block found")]
    NoBlock,
    #[error("PEM block {0:?} is truncated (no END line)")]
    Truncated(String),
    #[error("PEM block {0:?} is not valid base64")]
    Base64(String),
}

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// Every PEM block in `text`, in order. Text outside blocks is ignored, as Go does.
pub fn decode_all(text: &str) -> Result<Vec<Block>, PemError> {
    let mut blocks = Vec::new();
    let mut lines = text
        .split('\n')
        .map(|l| l.trim_end_matches([' ', '\t', '\r']));
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix(BEGIN)
            .and_then(|rest| rest.strip_suffix(DASHES))
        else {
            continue;
        };
        let end_line = format!("{END}{label}{DASHES}");
        let mut body = String::new();
        let mut in_headers = true;
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end_line {
                closed = true;
                break;
            }
            // RFC 1421 headers ("Proc-Type: 4,ENCRYPTED") come first and end at a blank line;
            // base64 never contains ':'.
            if in_headers && line.contains(':') {
                continue;
            }
            in_headers = false;
            body.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
        }
        if !closed {
            return Err(PemError::Truncated(label.to_string()));
        }
        let der = B64
            .decode(body.as_bytes())
            .map_err(|_| PemError::Base64(label.to_string()))?;
        blocks.push(Block {
            label: label.to_string(),
            der,
        });
    }
    if blocks.is_empty() {
        return Err(PemError::NoBlock);
    }
    Ok(blocks)
}

/// The first block of `text`.
pub fn decode_first(text: &str) -> Result<Block, PemError> {
    Ok(decode_all(text)?.remove(0))
}

/// `der` as PEM with 64-column lines (what Go writes).
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("{BEGIN}{label}{DASHES}\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("{END}{label}{DASHES}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_crlf_headers_and_text_between_blocks() {
        let der: Vec<u8> = (0..=255u8).collect();
        let one_line = format!(
            "-----BEGIN CERTIFICATE-----\r\n{}\r\n-----END CERTIFICATE-----  \r\n",
            B64.encode(&der)
        );
        assert_eq!(decode_first(&one_line).unwrap().der, der);
        let two = format!(
            "leading text\n{}between\n{}",
            encode("PUBLIC KEY", b"key"),
            encode("CERTIFICATE", &der)
        );
        let blocks = decode_all(&two).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "PUBLIC KEY");
        assert_eq!(blocks[1].der, der);
        let headers = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAEC\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(decode_first(headers).unwrap().der, vec![0, 1, 2]);
    }

    #[test]
    fn refusals() {
        assert_eq!(decode_all("nothing here"), Err(PemError::NoBlock));
        assert!(matches!(
            decode_all("-----BEGIN X-----\nAAAA\n"),
            Err(PemError::Truncated(_))
        ));
        assert!(matches!(
            decode_all("-----BEGIN X-----\nAAAA\n-----END Y-----\n"),
            Err(PemError::Truncated(_))
        ));
        assert!(matches!(
            decode_all("-----BEGIN X-----\n!!!!\n-----END X-----\n"),
            Err(PemError::Base64(_))
        ));
    }
}
