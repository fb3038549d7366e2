//! Why a verification failed, in classes a script can branch on: cosign's exit codes 10–12
//! where cosign has a class, wharf's own (14, 15) for attestations, which cosign reports as 1.
//! The class travels inside the `anyhow::Error`; the command line turns it into the exit code.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The image has no signature at all (cosign: ImageWithoutSignature).
    NoSignatures,
    /// The tag named on the command line does not exist (cosign: NonExistentTag).
    TagNotFound,
    /// There are signatures, none satisfies the policy (cosign: NoMatchingSignature).
    NoMatchingSignature,
    /// The image has no attestation (of the type asked for).
    NoAttestations,
    /// There are attestations, none satisfies the policy and type.
    NoMatchingAttestation,
}

/// A verification failure of a known class, with the message to print.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn error(kind: FailureKind, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failure {
            kind,
            message: message.into(),
        })
    }

    /// The class of `err`, if any error in its chain has one.
    pub fn kind_of(err: &anyhow::Error) -> Option<FailureKind> {
        err.chain()
            .find_map(|e| e.downcast_ref::<Failure>())
            .map(|f| f.kind)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_class_survives_context_and_the_message_reads_the_same() {
        let err = Failure::error(FailureKind::NoSignatures, "no signatures for x");
        let err = Err::<(), _>(err)
            .context("verification failed for y")
            .unwrap_err();
        assert_eq!(Failure::kind_of(&err), Some(FailureKind::NoSignatures));
        assert_eq!(
            format!("{err:#}"),
            "verification failed for y: no signatures for x"
        );
        assert_eq!(Failure::kind_of(&anyhow::anyhow!("other")), None);
    }
}
