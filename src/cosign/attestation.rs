//! in-toto attestations as cosign stores them: a Statement (subject = the manifest digest)
//! in a DSSE envelope, one envelope per layer of the `sha256-<hex>.att` manifest.

use crate::oci::manifest::Annotations;
use crate::oci::{Descriptor, Digest};
use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";

/// Predicate types wharf writes or checks by name.
pub const CYCLONEDX: &str = "https://cyclonedx.org/bom";
pub const SPDX: &str = "https://spdx.dev/Document";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
pub const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
pub const CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";

/// cosign's `--type` names and the predicate types they stand for: the one table `attest`,
/// `verify-attestation`, the blob verbs and the release read.
pub const PREDICATE_TYPES: [(&str, &str); 8] = [
    ("cyclonedx", CYCLONEDX),
    ("spdxjson", SPDX),
    ("spdx", SPDX),
    ("slsaprovenance1", SLSA_PROVENANCE_V1),
    ("slsaprovenance02", SLSA_PROVENANCE_V02),
    ("slsaprovenance", SLSA_PROVENANCE_V02),
    ("vuln", VULN),
    ("custom", CUSTOM),
];

/// The predicate type URI for a `--type` value (cosign's short names, or a URI).
pub fn predicate_type(kind: &str) -> Result<String> {
    if let Some((_, uri)) = PREDICATE_TYPES.iter().find(|(name, _)| *name == kind) {
        return Ok(uri.to_string());
    }
    if kind.contains("://") {
        return Ok(kind.to_string());
    }
    bail!(
        "unknown attestation type {kind:?}: use cyclonedx, spdxjson, slsaprovenance1, slsaprovenance02, vuln, custom, or a predicate type URI"
    )
}

/// Builds an in-toto Statement v1 around the predicate's exact bytes (never re-serialised, so
/// the predicate handed back later is the one given).
pub fn statement(
    subject_name: &str,
    digest: &Digest,
    predicate_type: &str,
    predicate: &[u8],
) -> Result<Vec<u8>> {
    let text =
        std::str::from_utf8(predicate).map_err(|_| anyhow!("the predicate is not UTF-8 text"))?;
    let raw: &RawValue =
        serde_json::from_str(text).context("the predicate is not a JSON document")?;
    if !raw.get().trim_start().starts_with('{') {
        bail!("the predicate must be a JSON object");
    }
    let mut out = format!(
        r#"{{"_type":{},"subject":[{{"name":{},"digest":{{"sha256":{}}}}}],"predicateType":{},"predicate":"#,
        serde_json::to_string(STATEMENT_V1)?,
        serde_json::to_string(subject_name)?,
        serde_json::to_string(digest.hex())?,
        serde_json::to_string(predicate_type)?,
    )
    .into_bytes();
    // The whole file, whitespace around the document included (JSON allows it there), so
    // the predicate handed back is the file as given, down to its final newline.
    out.extend_from_slice(text.as_bytes());
    out.push(b'}');
    Ok(out)
}

/// DSSE's Pre-Authentication Encoding: what is actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

impl Envelope {
    pub fn new(payload: &[u8], signature: &[u8]) -> Envelope {
        Envelope {
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            payload: B64.encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig: B64.encode(signature),
            }],
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Envelope> {
        serde_json::from_slice(bytes).context("the attestation is not a DSSE envelope")
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("envelope serialises")
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>> {
        B64.decode(&self.payload)
            .map_err(|_| anyhow!("the envelope payload is not base64"))
    }

    pub fn signature_bytes(&self) -> Result<Vec<Vec<u8>>> {
        self.signatures
            .iter()
            .map(|s| {
                B64.decode(&s.sig)
                    .map_err(|_| anyhow!("an envelope signature is not base64"))
            })
            .collect()
    }
}

/// The parts of a Statement verification needs; `predicate` is its exact bytes, with the
/// whitespace embedded around it.
pub struct ParsedStatement<'a> {
    pub predicate_type: String,
    pub subject_digests: Vec<String>,
    pub predicate: &'a str,
}

/// Widens `inner` (a slice of `outer`) over the JSON whitespace around it.
fn with_surrounding_whitespace<'a>(outer: &'a str, inner: &'a str) -> &'a str {
    let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
    let end = start + inner.len();
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let bytes = outer.as_bytes();
    let mut s = start;
    while s > 0 && is_ws(bytes[s - 1]) {
        s -= 1;
    }
    let mut e = end;
    while e < bytes.len() && is_ws(bytes[e]) {
        e += 1;
    }
    &outer[s..e]
}

pub fn parse_statement(bytes: &[u8]) -> Result<ParsedStatement<'_>> {
    #[derive(Deserialize)]
    struct Statement<'a> {
        #[serde(rename = "_type")]
        kind: String,
        #[serde(rename = "predicateType")]
        predicate_type: String,
        subject: Vec<Subject>,
        #[serde(borrow)]
        predicate: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct Subject {
        digest: std::collections::BTreeMap<String, String>,
    }
    let text = std::str::from_utf8(bytes).context("the attestation payload is not UTF-8")?;
    let s: Statement = serde_json::from_str(text)
        .context("the attestation payload is not an in-toto Statement")?;
    if s.kind != STATEMENT_V1 && s.kind != STATEMENT_V01 {
        bail!("unsupported in-toto statement type {:?}", s.kind);
    }
    Ok(ParsedStatement {
        predicate_type: s.predicate_type,
        subject_digests: s
            .subject
            .into_iter()
            .filter_map(|x| x.digest.get("sha256").cloned())
            .collect(),
        predicate: with_surrounding_whitespace(text, s.predicate.get()),
    })
}

/// The `.att` layer for an envelope, annotated as cosign does.
pub fn attestation_layer(envelope: &[u8], predicate_type: &str, extra: Annotations) -> Descriptor {
    let mut annotations = extra;
    // cosign writes an empty signature annotation on attestation layers; readers expect it.
    annotations.insert(
        super::sigmanifest::SIGNATURE_ANNOTATION.to_string(),
        String::new(),
    );
    annotations.insert(
        PREDICATE_TYPE_ANNOTATION.to_string(),
        predicate_type.to_string(),
    );
    let mut d = Descriptor::new(DSSE_MEDIA_TYPE, Digest::of(envelope), envelope.len() as u64);
    d.annotations = Some(annotations);
    d
}

/// Checks a predicate is what its type says, without rewriting it: SBOMs from syft, cdxgen or
/// Trivy (CycloneDX up to 1.6) are accepted as they are.
pub fn check_predicate(predicate_type: &str, predicate: &[u8]) -> Result<()> {
    let value: serde_json::Value =
        serde_json::from_slice(predicate).context("the predicate is not a JSON document")?;
    let obj = value
        .as_object()
        .ok_or_else(|| anyhow!("the predicate must be a JSON object"))?;
    match predicate_type {
        CYCLONEDX => {
            if obj.get("bomFormat").and_then(|v| v.as_str()) != Some("CycloneDX") {
                bail!("the predicate is not a CycloneDX document (bomFormat is not \"CycloneDX\")");
            }
            let version = obj
                .get("specVersion")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if !matches!(
                version,
                "1.0" | "1.1" | "1.2" | "1.3" | "1.4" | "1.5" | "1.6" | "1.7"
            ) {
                bail!("the CycloneDX document has an unknown specVersion {version:?}");
            }
        }
        SPDX => {
            let version = obj
                .get("spdxVersion")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if !version.starts_with("SPDX-") {
                bail!("the predicate is not an SPDX JSON document (no spdxVersion)");
            }
        }
        SLSA_PROVENANCE_V1
            if !obj.contains_key("buildDefinition") || !obj.contains_key("runDetails") =>
        {
            bail!("the predicate is not SLSA provenance v1 (needs buildDefinition and runDetails)");
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_keeps_predicate_bytes() {
        let predicate = b"{\n  \"bomFormat\": \"CycloneDX\",  \"specVersion\": \"1.6\"\n}";
        let d = Digest::of(b"img");
        let s = statement("r/app", &d, "https://cyclonedx.org/bom", predicate).unwrap();
        let parsed = parse_statement(&s).unwrap();
        assert_eq!(parsed.predicate.as_bytes(), predicate);
        let with_newline = b"{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.5\"}\n";
        let s = statement("r/app", &d, "https://cyclonedx.org/bom", with_newline).unwrap();
        assert_eq!(
            parse_statement(&s).unwrap().predicate.as_bytes(),
            with_newline
        );
        assert_eq!(parsed.subject_digests, vec![d.hex().to_string()]);
        assert!(statement("r/app", &d, "x", b"[1]").is_err());
        assert!(statement("r/app", &d, "x", b"{not json").is_err());
    }

    #[test]
    fn pae_matches_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn type_names() {
        assert_eq!(
            predicate_type("cyclonedx").unwrap(),
            "https://cyclonedx.org/bom"
        );
        assert_eq!(
            predicate_type("slsaprovenance1").unwrap(),
            "https://slsa.dev/provenance/v1"
        );
        assert!(predicate_type("nope").is_err());
    }
}
