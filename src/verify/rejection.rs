//! Why a signature, attestation or bundle does not count: a kind a program can match on, and a
//! message a person can act on.

use std::fmt;

/// The reason class of a [`Rejection`]. `code()` is stable (tests and `--output json` use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectionKind {
    /// Not parseable: JSON, base64, DER, an envelope without a signature...
    Malformed,
    /// A bundle media type (version) wharf does not know.
    UnsupportedVersion,
    /// The signature is about something else: another digest, subject or message.
    WrongArtifact,
    /// The statement is of another predicate type than asked for.
    WrongPredicateType,
    /// The signature does not verify under the key or certificate.
    BadSignature,
    /// Key material where a certificate is needed, or the other way round.
    WrongMaterial,
    /// The certificate does not chain to the trusted root, or breaks X.509 path rules.
    UntrustedCertificate,
    /// Signed outside the certificate's validity, or with no trusted time at all.
    OutsideValidity,
    /// No valid SCT from a CT log of the trusted root.
    Sct,
    /// The certificate's identity, issuer or claims do not match the policy.
    WrongIdentity,
    /// No transparency log entry where one is required.
    TlogMissing,
    /// Log entries only from logs the trusted root does not list.
    TlogUnknownLog,
    /// The entry's Signed Entry Timestamp (inclusion promise) does not verify.
    TlogPromise,
    /// The inclusion proof does not lead to the entry or to the checkpoint's root.
    TlogProof,
    /// The checkpoint is malformed, not the log's, or its signature does not verify.
    TlogCheckpoint,
    /// The log entry is about another signature, key, certificate or artifact.
    TlogEntryMismatch,
    /// The entry's integrated time is in the future or outside the log key's validity.
    TlogTime,
    /// A signed timestamp is required and there is none.
    TimestampMissing,
    /// A signed timestamp is malformed, about other data, or from an untrusted authority.
    TimestampInvalid,
    /// The content could not be read from where it is stored (tag-scheme layers).
    Unavailable,
}

impl RejectionKind {
    pub fn code(self) -> &'static str {
        use RejectionKind::*;
        match self {
            Malformed => "malformed",
            UnsupportedVersion => "unsupported-version",
            WrongArtifact => "wrong-artifact",
            WrongPredicateType => "wrong-predicate-type",
            BadSignature => "bad-signature",
            WrongMaterial => "wrong-material",
            UntrustedCertificate => "untrusted-certificate",
            OutsideValidity => "outside-validity",
            Sct => "sct",
            WrongIdentity => "wrong-identity",
            TlogMissing => "tlog-missing",
            TlogUnknownLog => "tlog-unknown-log",
            TlogPromise => "tlog-promise",
            TlogProof => "tlog-proof",
            TlogCheckpoint => "tlog-checkpoint",
            TlogEntryMismatch => "tlog-entry-mismatch",
            TlogTime => "tlog-time",
            TimestampMissing => "timestamp-missing",
            TimestampInvalid => "timestamp-invalid",
            Unavailable => "unavailable",
        }
    }

    /// Lower is more telling, and is reported first among several candidates: "signed by the
    /// right key but for another image" says more than "some layer is garbled".
    pub fn rank(self) -> u8 {
        use RejectionKind::*;
        match self {
            WrongArtifact => 0,
            UntrustedCertificate | Sct | WrongIdentity => 1,
            OutsideValidity | TlogUnknownLog | TlogPromise | TlogProof | TlogCheckpoint
            | TlogEntryMismatch | TlogTime | TimestampInvalid => 2,
            TlogMissing | TimestampMissing => 3,
            WrongPredicateType => 4,
            WrongMaterial => 6,
            Unavailable => 7,
            BadSignature => 8,
            Malformed | UnsupportedVersion => 9,
        }
    }
}

/// Why one candidate (a signature layer, a bundle) does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub message: String,
}

impl Rejection {
    pub fn new(kind: RejectionKind, message: impl Into<String>) -> Rejection {
        Rejection {
            kind,
            message: message.into(),
        }
    }

    pub fn rank(&self) -> u8 {
        self.kind.rank()
    }

    /// The same rejection, its message prefixed with `context: `.
    pub fn context(self, context: impl fmt::Display) -> Rejection {
        Rejection {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}

pub(crate) fn reject<T>(kind: RejectionKind, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(kind, message))
}

/// Candidates looked at for one target, and why each did not count: the most telling
/// rejection leads the summary.
#[derive(Debug, Default)]
pub struct Rejections {
    all: Vec<Rejection>,
}

impl Rejections {
    pub fn push(&mut self, rejection: Rejection) {
        self.all.push(rejection);
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// The most telling rejection (lowest rank, first seen among equals).
    pub fn best(&self) -> Option<&Rejection> {
        self.all.iter().min_by_key(|r| r.rank())
    }

    /// `best` and, when several were tried, how many: "... (3 signatures, none valid)".
    pub fn summary(&self, noun: &str) -> Option<(Rejection, String)> {
        let best = self.best()?.clone();
        let others = if self.all.len() > 1 {
            format!(" ({} {noun}, none valid)", self.all.len())
        } else {
            String::new()
        };
        Some((best, others))
    }
}
