//! Sigstore trust material: a `trusted_root.json` (Fulcio CA chains, Rekor and CT log keys).
//! The public-good instance's root is embedded; private deployments pass their own.

use super::pubkey::VerifyingKey;
use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use der::Decode;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

const PUBLIC_GOOD: &str = include_str!("public_good_trusted_root.json");

/// A time window in Unix seconds; `end` open when `None`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: i64,
    pub end: Option<i64>,
}

impl Window {
    pub fn contains(&self, t: i64) -> bool {
        t >= self.start && self.end.is_none_or(|e| t <= e)
    }
}

/// A log's signing key (Rekor or a CT log), found by its log id: SHA-256 of its DER SPKI for
/// Rekor v1 and CT logs, the signed-note key hash for Rekor v2 (the trusted root says which).
#[derive(Debug, Clone)]
pub struct LogKey {
    pub id: Vec<u8>,
    pub key: VerifyingKey,
    pub valid: Window,
    pub base_url: String,
}

/// A certificate authority: its chain from intermediate(s) to root.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub chain: Vec<Certificate>,
    pub valid: Window,
    pub uri: String,
}

/// An RFC 3161 timestamp authority: its chain from the signing certificate to the root.
#[derive(Debug, Clone)]
pub struct TimestampAuthority {
    pub chain: Vec<Certificate>,
    pub valid: Window,
    pub uri: String,
}

#[derive(Debug, Clone)]
pub struct TrustRoot {
    pub rekor_keys: Vec<LogKey>,
    pub ct_keys: Vec<LogKey>,
    pub authorities: Vec<CertificateAuthority>,
    pub timestamp_authorities: Vec<TimestampAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    media_type: Option<String>,
    #[serde(default)]
    tlogs: Vec<LogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
    #[serde(default)]
    ctlogs: Vec<LogJson>,
    #[serde(default)]
    timestamp_authorities: Vec<CaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogJson {
    #[serde(default)]
    base_url: String,
    public_key: KeyJson,
    log_id: Option<LogIdJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyJson {
    raw_bytes: Option<String>,
    valid_for: Option<ValidJson>,
}

#[derive(Deserialize)]
struct ValidJson {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    #[serde(default)]
    uri: String,
    cert_chain: ChainJson,
    valid_for: Option<ValidJson>,
}

#[derive(Deserialize)]
struct ChainJson {
    certificates: Vec<RawJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJson {
    raw_bytes: String,
}

/// A `validFor` time range. Absent: always valid. Present, its `start` is required (a range
/// missing its start is malformed, not unbounded); `end` is inclusive.
fn window(v: &Option<ValidJson>, what: &str) -> Result<Window> {
    let Some(v) = v else {
        return Ok(Window {
            start: 0,
            end: None,
        });
    };
    let start = v
        .start
        .as_deref()
        .ok_or_else(|| anyhow!("{what} has a validFor range without its required start"))?;
    let window = Window {
        start: parse_rfc3339(start)?,
        end: v.end.as_deref().map(parse_rfc3339).transpose()?,
    };
    if window.end.is_some_and(|end| end < window.start) {
        bail!("{what} has a validFor range that ends before it starts");
    }
    Ok(window)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac]Z` into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64> {
    let bad = || anyhow!("invalid timestamp {s:?}");
    let s = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let time = time.split('.').next().ok_or_else(bad)?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    Ok(days_from_civil(d[0], d[1], d[2]) * 86400 + t[0] * 3600 + t[1] * 60 + t[2])
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86400), unix.rem_euclid(86400));
    // Inverse of days_from_civil (Howard Hinnant's civil_from_days).
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn log_key(log: &LogJson, what: &str) -> Result<Option<LogKey>> {
    let what = format!("{what} {}", log.base_url);
    let valid = window(&log.public_key.valid_for, &what)?;
    let Some(raw) = &log.public_key.raw_bytes else {
        return Ok(None);
    };
    let der = B64
        .decode(raw)
        .with_context(|| format!("the key of {what} is not base64"))?;
    // A key of a type wharf cannot verify is left out: the log then counts as unknown.
    let Ok(key) = VerifyingKey::from_spki_der(&der) else {
        return Ok(None);
    };
    let id = match &log.log_id {
        Some(id) => B64
            .decode(&id.key_id)
            .with_context(|| format!("the log id of {what} is not base64"))?,
        None => Sha256::digest(&der).to_vec(),
    };
    Ok(Some(LogKey {
        id,
        key,
        valid,
        base_url: log.base_url.clone(),
    }))
}

fn chain(certificates: &[RawJson], what: &str) -> Result<Vec<Certificate>> {
    certificates
        .iter()
        .map(|c| {
            let der = B64
                .decode(&c.raw_bytes)
                .with_context(|| format!("a certificate of {what} is not base64"))?;
            Certificate::from_der(&der)
                .with_context(|| format!("a certificate of {what} does not parse"))
        })
        .collect()
}

fn log_keys(logs: &[LogJson], what: &str) -> Result<Vec<LogKey>> {
    Ok(logs
        .iter()
        .map(|l| log_key(l, what))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect())
}

impl TrustRoot {
    pub fn public_good() -> TrustRoot {
        TrustRoot::from_json(PUBLIC_GOOD.as_bytes()).expect("the embedded trusted root parses")
    }

    pub fn from_json(bytes: &[u8]) -> Result<TrustRoot> {
        let root: RootJson =
            serde_json::from_slice(bytes).context("not a Sigstore trusted_root.json")?;
        if let Some(m) = &root.media_type {
            if !m.starts_with("application/vnd.dev.sigstore.trustedroot") {
                bail!("unexpected trusted root media type {m:?}");
            }
        }
        let mut authorities = Vec::new();
        for ca in &root.certificate_authorities {
            let what = format!("certificate authority {}", ca.uri);
            authorities.push(CertificateAuthority {
                chain: chain(&ca.cert_chain.certificates, &what)?,
                valid: window(&ca.valid_for, &what)?,
                uri: ca.uri.clone(),
            });
        }
        let mut timestamp_authorities = Vec::new();
        for tsa in &root.timestamp_authorities {
            let what = format!("timestamp authority {}", tsa.uri);
            timestamp_authorities.push(TimestampAuthority {
                chain: chain(&tsa.cert_chain.certificates, &what)?,
                valid: window(&tsa.valid_for, &what)?,
                uri: tsa.uri.clone(),
            });
        }
        Ok(TrustRoot {
            rekor_keys: log_keys(&root.tlogs, "transparency log")?,
            ct_keys: log_keys(&root.ctlogs, "CT log")?,
            authorities,
            timestamp_authorities,
        })
    }

    pub fn load(path: &std::path::Path) -> Result<TrustRoot> {
        // Public-good's is 7 KiB; a private deployment's with a few rotations stays far below.
        let bytes = crate::files::read_bounded(path, 4 << 20, "trusted root")?;
        TrustRoot::from_json(&bytes).with_context(|| format!("trusted root {}", path.display()))
    }

    pub fn rekor_key(&self, log_id: &[u8]) -> Option<&LogKey> {
        self.rekor_keys.iter().find(|k| k.id == log_id)
    }

    pub fn ct_key(&self, log_id: &[u8]) -> Option<&LogKey> {
        self.ct_keys.iter().find(|k| k.id == log_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_good_root_loads() {
        let root = TrustRoot::public_good();
        // Rekor v1 (ECDSA) and the first Rekor v2 shard (Ed25519).
        assert_eq!(root.rekor_keys.len(), 2);
        assert_eq!(root.ct_keys.len(), 2);
        assert_eq!(root.authorities.len(), 2);
        assert_eq!(root.timestamp_authorities.len(), 1);
        assert_eq!(
            B64.encode(&root.rekor_keys[0].id),
            "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="
        );
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_rfc3339("2021-01-12T11:53:27Z").unwrap(), 1610452407);
        assert_eq!(
            parse_rfc3339("2022-12-31T23:59:59.999Z").unwrap(),
            1672531199
        );
        assert!(parse_rfc3339("yesterday").is_err());
        for t in [0, 1610452407, 1672531199, 951782400] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)).unwrap(), t);
        }
    }
}
