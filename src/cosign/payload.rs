//! The Simple Signing payload cosign signs for a container image.

use crate::oci::Digest;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SIGNATURE_TYPE: &str = "cosign container image signature";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimpleSigning {
    pub critical: Critical,
    /// cosign writes `null` when there are no annotations.
    pub optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    pub fn new(
        docker_reference: &str,
        digest: &Digest,
        annotations: &BTreeMap<String, String>,
    ) -> Self {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: docker_reference.to_string(),
                },
                image: Image {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: SIGNATURE_TYPE.to_string(),
            },
            optional: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect()
            }),
        }
    }

    /// The bytes that get signed: compact JSON, fields in cosign's order.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("payload serialises")
    }

    /// Parses a payload and checks it is a cosign image signature.
    pub fn parse(bytes: &[u8]) -> Result<SimpleSigning> {
        let payload: SimpleSigning = serde_json::from_slice(bytes)
            .context("the signed payload is not a Simple Signing document")?;
        if payload.critical.kind != SIGNATURE_TYPE {
            bail!(
                "the signed payload has type {:?}, not {SIGNATURE_TYPE:?}",
                payload.critical.kind
            );
        }
        Ok(payload)
    }

    pub fn signed_digest(&self) -> &str {
        &self.critical.image.docker_manifest_digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cosign_layout() {
        let d = Digest::of(b"x");
        let p = SimpleSigning::new("localhost:5000/app", &d, &BTreeMap::new());
        assert_eq!(
            String::from_utf8(p.to_bytes()).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"localhost:5000/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        let mut a = BTreeMap::new();
        a.insert("env".to_string(), "prod".to_string());
        let p = SimpleSigning::new("r/a", &d, &a);
        assert!(String::from_utf8(p.to_bytes())
            .unwrap()
            .ends_with(r#""optional":{"env":"prod"}}"#));
        assert_eq!(SimpleSigning::parse(&p.to_bytes()).unwrap(), p);
        assert!(SimpleSigning::parse(br#"{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":""},"type":"x"},"optional":null}"#).is_err());
    }
}
