//! cosign's tag scheme: a `sha256-<hex>.sig` layer (a Simple Signing payload, its signature
//! and certificate in annotations, the Rekor bundle beside them), and a `.att` layer (a DSSE
//! envelope with the same annotations).

use super::evidence::{
    check_evidence, check_signature, Content, Context, Evidence, LogEvidence, Material, Verified,
};
use super::policy::Policy;
use super::rejection::{reject, Rejection, RejectionKind as Kind};
use super::statement::{check_statement, Naming, VerifiedStatement};
use crate::cosign::attestation::Envelope;
use crate::cosign::payload::SimpleSigning;
use crate::oci::Digest;
use crate::sigstore::cert::SigningCert;
use crate::sigstore::claims::{self, GithubClaim};
use crate::sigstore::rekor;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest as _, Sha256};

/// What a tag-scheme layer carries besides its blob: the annotations that matter.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerAnnotations<'a> {
    /// `dev.cosignproject.cosign/signature` (base64).
    pub signature: Option<&'a str>,
    /// `dev.sigstore.cosign/certificate` (PEM).
    pub certificate: Option<&'a str>,
    /// `dev.sigstore.cosign/bundle` (Rekor's SET and entry, JSON).
    pub rekor_bundle: Option<&'a str>,
    /// `dev.sigstore.cosign/rfc3161timestamp` (JSON). Only reported: the tag scheme's
    /// timestamps are not part of the verdict.
    pub rfc3161_timestamp: Option<&'a str>,
}

fn material(annotations: &LayerAnnotations<'_>) -> Result<Material, Rejection> {
    Ok(match annotations.certificate {
        Some(pem) => Material::Certificate(Box::new(SigningCert::from_pem(pem).map_err(|e| {
            Rejection::new(
                Kind::Malformed,
                format!("malformed signing certificate: {e:#}"),
            )
        })?)),
        None => Material::Key,
    })
}

/// cosign's bundle annotation in the engine's shape: an entry with its SET, no proof.
fn log_evidence(annotation: &str) -> Result<LogEvidence, Rejection> {
    let bundle = rekor::Bundle::parse(annotation)
        .map_err(|e| Rejection::new(Kind::Malformed, format!("{e:#}")))?;
    let malformed = |what: &str| {
        Rejection::new(
            Kind::Malformed,
            format!("transparency log evidence invalid: {what}"),
        )
    };
    Ok(LogEvidence {
        log_id: hex::decode(&bundle.payload.log_id)
            .map_err(|_| malformed("the bundle's logID is not hex"))?,
        log_index: bundle.payload.log_index,
        kind_version: None,
        integrated_time: bundle.payload.integrated_time,
        promise: Some(
            B64.decode(&bundle.signed_entry_timestamp)
                .map_err(|_| malformed("the Signed Entry Timestamp is not base64"))?,
        ),
        proof: None,
        body: B64
            .decode(&bundle.payload.body)
            .map_err(|_| malformed("the log entry body is not base64"))?,
        body_b64: bundle.payload.body,
    })
}

fn evidence(content: Content, annotations: &LayerAnnotations<'_>) -> Result<Evidence, Rejection> {
    Ok(Evidence {
        content,
        material: material(annotations)?,
        tlog: annotations
            .rekor_bundle
            .map(log_evidence)
            .transpose()?
            .into_iter()
            .collect(),
        timestamps: Vec::new(),
        promise_required: true,
        proof_required: false,
    })
}

/// Verifies a `.sig` layer: its signature over the Simple Signing `payload` under the policy,
/// the payload naming exactly `manifest`, and the evidence. Returns the payload as JSON.
pub fn verify_signature_layer(
    payload: &[u8],
    annotations: &LayerAnnotations<'_>,
    manifest: &Digest,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Result<(Verified, serde_json::Value), Rejection> {
    let Some(signature_b64) = annotations.signature else {
        return reject(
            Kind::Malformed,
            "signature invalid: a signature layer has no signature annotation",
        );
    };
    let Ok(signature) = B64.decode(signature_b64.trim()) else {
        return reject(
            Kind::Malformed,
            "signature invalid: the signature annotation is not base64",
        );
    };
    let content = Content::Message {
        digest: Sha256::digest(payload).into(),
        signature,
    };
    let evidence = evidence(content, annotations)?;
    let signed = check_signature(&evidence, policy)?;
    let parsed = SimpleSigning::parse(payload)
        .map_err(|e| Rejection::new(Kind::Malformed, format!("signature invalid: {e:#}")))?;
    if parsed.signed_digest() != manifest.as_str() {
        return reject(
            Kind::WrongArtifact,
            format!(
                "signature for another image: it verifies but signs {}, not {manifest} (a signature copied from another image?)",
                parsed.signed_digest()
            ),
        );
    }
    let verified = check_evidence(&evidence, signed, policy, ctx)?;
    let value = serde_json::from_slice(payload)
        .map_err(|e| Rejection::new(Kind::Malformed, format!("signature invalid: {e}")))?;
    Ok((verified, value))
}

/// A verified Simple Signing payload as cosign's `verify` prints it: the payload as signed,
/// with the evidence of its signature copied into `optional` (kept as signed besides):
/// `Bundle` (the Rekor bundle), `RFC3161Timestamp`, and for a certificate the policy checked,
/// `Subject`, `Issuer` and the legacy Fulcio extensions under their OIDs and cosign's names.
/// A signed `optional` that is not an object is left alone (cosign cannot print it at all).
pub fn cosign_verified_payload(
    mut payload: serde_json::Value,
    annotations: &LayerAnnotations<'_>,
    verified: &Verified,
) -> serde_json::Value {
    let evidence = cosign_optional(annotations, verified);
    let Some(fields) = payload.as_object_mut() else {
        return payload;
    };
    let optional = fields.entry("optional").or_insert(serde_json::Value::Null);
    if evidence.is_empty() {
        return payload;
    }
    if optional.is_null() {
        *optional = serde_json::Value::Object(Default::default());
    }
    if let Some(optional) = optional.as_object_mut() {
        optional.extend(evidence);
    }
    payload
}

/// The fields cosign 2.5's `PrintVerification` adds to a payload's `optional`.
fn cosign_optional(
    annotations: &LayerAnnotations<'_>,
    verified: &Verified,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut optional = serde_json::Map::new();
    if let Some(cert) = &verified.signed.certificate {
        optional.insert("Subject".into(), Value::from(cert.cosign_subject()));
        let legacy = |oid: &str| cert.raw_extension_text(oid).filter(|v| !v.is_empty());
        if let Some(issuer) = legacy(claims::ISSUER_V1) {
            optional.insert("Issuer".into(), Value::from(issuer.clone()));
            optional.insert(claims::ISSUER_V1.into(), Value::from(issuer));
        }
        for claim in GithubClaim::ALL {
            if let Some(value) = legacy(claim.oid()) {
                optional.insert(claim.cosign_name().into(), Value::from(value.clone()));
                optional.insert(claim.oid().into(), Value::from(value));
            }
        }
    }
    // Go re-encodes the bundle through its struct: the SET as canonical base64, unknown
    // fields dropped. The annotation already parsed, or the signature would not have verified.
    if let Some(mut bundle) = annotations
        .rekor_bundle
        .and_then(|a| rekor::Bundle::parse(a).ok())
    {
        if let Ok(set) = B64.decode(&bundle.signed_entry_timestamp) {
            bundle.signed_entry_timestamp = B64.encode(set);
        }
        if let Ok(bundle) = serde_json::to_value(bundle) {
            optional.insert("Bundle".into(), bundle);
        }
    }
    if let Some(timestamp) = annotations.rfc3161_timestamp.and_then(rfc3161_field) {
        optional.insert("RFC3161Timestamp".into(), timestamp);
    }
    optional
}

/// The RFC 3161 annotation as Go re-encodes it; `None` where cosign cannot read it.
fn rfc3161_field(annotation: &str) -> Option<serde_json::Value> {
    let timestamp: Rfc3161Annotation = serde_json::from_str(annotation).ok()?;
    let signed = match timestamp.signed {
        Some(b64) => Some(B64.encode(B64.decode(b64).ok()?)),
        None => None,
    };
    Some(serde_json::json!({ "SignedRFC3161Timestamp": signed }))
}

/// cosign's RFC 3161 timestamp annotation.
#[derive(serde::Deserialize)]
struct Rfc3161Annotation {
    #[serde(rename = "SignedRFC3161Timestamp")]
    signed: Option<String>,
}

/// Verifies a `.att` layer: a DSSE envelope signed under the policy whose in-toto statement
/// names `manifest` (and is of `predicate_type`, when given), with its evidence.
pub fn verify_attestation_layer(
    envelope: &[u8],
    annotations: &LayerAnnotations<'_>,
    manifest: &Digest,
    predicate_type: Option<&str>,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Result<(Verified, VerifiedStatement), Rejection> {
    let envelope = Envelope::parse(envelope).or_else(|_| {
        reject(
            Kind::Malformed,
            "an attestation layer is not a DSSE envelope",
        )
    })?;
    let content = Content::from_envelope(&envelope)?;
    let evidence = evidence(content, annotations)?;
    let signed = check_signature(&evidence, policy)?;
    let Content::Dsse {
        payload_type,
        payload,
        ..
    } = &evidence.content
    else {
        unreachable!("built from an envelope");
    };
    let subject = manifest.sha256();
    let naming = Naming {
        holder: "attestation",
        target: "image",
    };
    let statement = check_statement(payload_type, payload, &subject, predicate_type, naming)?;
    let verified = check_evidence(&evidence, signed, policy, ctx)?;
    Ok((verified, statement))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigstore::pubkey::VerifyingKey;
    use crate::verify::evidence::Signed;
    use serde_json::{json, Value};

    /// A production Fulcio certificate from a GitHub Actions run: the leaf of the
    /// sigstore-conformance `happy-path-v0.3` bundle (see tests/conformance/README.md).
    fn github_actions_cert() -> SigningCert {
        let bundle: Value = serde_json::from_str(include_str!(
            "../../tests/conformance/bundle-verify/happy-path-v0.3/bundle.sigstore.json"
        ))
        .unwrap();
        let raw = bundle["verificationMaterial"]["certificate"]["rawBytes"]
            .as_str()
            .unwrap();
        SigningCert::from_der(&B64.decode(raw).unwrap()).unwrap()
    }

    fn verified(certificate: Option<SigningCert>) -> Verified {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        Verified {
            signed: Signed {
                signature: Vec::new(),
                verifier_der: Vec::new(),
                key: VerifyingKey::from_p256(&secret.public_key()),
                certificate,
            },
            times: Vec::new(),
            log_entries: 0,
        }
    }

    fn payload(optional: Value) -> Value {
        json!({
            "critical": {
                "identity": {"docker-reference": "registry.example/app"},
                "image": {"docker-manifest-digest": "sha256:aa"},
                "type": "cosign container image signature",
            },
            "optional": optional,
        })
    }

    #[test]
    fn a_certificate_gives_subject_issuer_and_the_legacy_github_extensions() {
        let out = cosign_verified_payload(
            payload(Value::Null),
            &LayerAnnotations::default(),
            &verified(Some(github_actions_cert())),
        );
        let repo = "sigstore-conformance/extremely-dangerous-public-oidc-beacon";
        assert_eq!(
            out["optional"],
            json!({
                "Subject": format!("https://github.com/{repo}/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"),
                "Issuer": "https://token.actions.githubusercontent.com",
                "1.3.6.1.4.1.57264.1.1": "https://token.actions.githubusercontent.com",
                "githubWorkflowTrigger": "workflow_dispatch",
                "1.3.6.1.4.1.57264.1.2": "workflow_dispatch",
                "githubWorkflowSha": "c7b3dfb335f051e1c86bda4c716fac97df62ad81",
                "1.3.6.1.4.1.57264.1.3": "c7b3dfb335f051e1c86bda4c716fac97df62ad81",
                "githubWorkflowName": "Extremely dangerous OIDC beacon",
                "1.3.6.1.4.1.57264.1.4": "Extremely dangerous OIDC beacon",
                "githubWorkflowRepository": repo,
                "1.3.6.1.4.1.57264.1.5": repo,
                "githubWorkflowRef": "refs/heads/main",
                "1.3.6.1.4.1.57264.1.6": "refs/heads/main",
            })
        );
        assert_eq!(out["critical"], payload(Value::Null)["critical"]);
    }

    #[test]
    fn the_bundle_and_timestamp_join_what_was_signed() {
        let bundle = r#"{"SignedEntryTimestamp":"AQI=","Payload":{"body":"e30=","integratedTime":1700000000,"logIndex":7,"logID":"ab","extra":1}}"#;
        let annotations = LayerAnnotations {
            rekor_bundle: Some(bundle),
            rfc3161_timestamp: Some(r#"{"SignedRFC3161Timestamp":"MAA="}"#),
            ..Default::default()
        };
        let out =
            cosign_verified_payload(payload(json!({"tag": "v1"})), &annotations, &verified(None));
        assert_eq!(
            out["optional"],
            json!({
                "tag": "v1",
                "Bundle": {
                    "SignedEntryTimestamp": "AQI=",
                    "Payload": {"body": "e30=", "integratedTime": 1700000000, "logIndex": 7, "logID": "ab"},
                },
                "RFC3161Timestamp": {"SignedRFC3161Timestamp": "MAA="},
            })
        );
    }

    #[test]
    fn without_evidence_optional_is_null_as_cosign_prints_it() {
        let mut signed = payload(Value::Null);
        signed.as_object_mut().unwrap().remove("optional");
        let out = cosign_verified_payload(signed, &LayerAnnotations::default(), &verified(None));
        assert_eq!(out, payload(Value::Null));
    }

    #[test]
    fn an_unreadable_timestamp_or_a_signed_optional_not_an_object_is_left_out() {
        let annotations = LayerAnnotations {
            rfc3161_timestamp: Some(r#"{"SignedRFC3161Timestamp":"not base64"}"#),
            ..Default::default()
        };
        let out = cosign_verified_payload(payload(Value::Null), &annotations, &verified(None));
        assert_eq!(out["optional"], Value::Null);
        let out = cosign_verified_payload(
            payload(json!("as signed")),
            &LayerAnnotations::default(),
            &verified(Some(github_actions_cert())),
        );
        assert_eq!(out["optional"], "as signed");
    }
}
