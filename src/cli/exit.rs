//! Exit codes: cosign's for the verification failures cosign has codes for, wharf's own for
//! attestations (which cosign 2.5 reports as 1), 1 for everything else. Documented in README
//! and in the `--help` of the commands that use them.

use crate::ops::failure::{Failure, FailureKind};
use std::process::ExitCode;

/// No signature on the image (cosign: ImageWithoutSignature).
pub const NO_SIGNATURES: u8 = 10;
/// The tag given does not exist (cosign: NonExistentTag).
pub const TAG_NOT_FOUND: u8 = 11;
/// Signatures exist, none satisfies the policy (cosign: NoMatchingSignature).
pub const NO_MATCHING_SIGNATURE: u8 = 12;
// 13 is cosign's NoCertificateFoundOnSignature, documented but never seen from cosign 2.5's
// verify: it arrives wrapped in "no matching signatures" and exits 12. wharf does the same.
/// No attestation (of the type asked for). wharf's own: cosign exits 1.
pub const NO_ATTESTATIONS: u8 = 14;
/// Attestations exist, none satisfies the policy and type. wharf's own: cosign exits 1.
pub const NO_MATCHING_ATTESTATION: u8 = 15;

/// The `--help` section listing them (verify, verify-attestation and the top level).
pub const EXIT_CODES_HELP: &str = "\
EXIT CODES:
   0  success
   1  any other failure (bad arguments, registry errors, hostile input, ...)
   2  usage error (unknown flag, missing argument)
  10  verify: the image has no signature (as cosign)
  11  verify, verify-attestation: the tag given does not exist (as cosign)
  12  verify: signatures exist, none satisfies the policy (as cosign; this includes a
      keyless policy meeting a signature without a certificate, which cosign documents
      as 13 but reports as 12)
  14  verify-attestation: no attestation (of --type) on the image (cosign: 1)
  15  verify-attestation: attestations exist, none satisfies the policy (cosign: 1)";

/// The exit code for a failed command.
pub fn code_for(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(number_for(err))
}

fn number_for(err: &anyhow::Error) -> u8 {
    match Failure::kind_of(err) {
        Some(FailureKind::NoSignatures) => NO_SIGNATURES,
        Some(FailureKind::TagNotFound) => TAG_NOT_FOUND,
        Some(FailureKind::NoMatchingSignature) => NO_MATCHING_SIGNATURE,
        Some(FailureKind::NoAttestations) => NO_ATTESTATIONS,
        Some(FailureKind::NoMatchingAttestation) => NO_MATCHING_ATTESTATION,
        None => 1,
    }
}

/// Adds the EXIT CODES section to the commands whose failures have their own codes.
pub fn document(cmd: clap::Command) -> clap::Command {
    cmd.after_long_help(EXIT_CODES_HELP)
        .mut_subcommand("verify", |c| c.after_long_help(EXIT_CODES_HELP))
        .mut_subcommand("verify-attestation", |c| c.after_long_help(EXIT_CODES_HELP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_has_its_code_and_the_rest_is_one() {
        for (kind, code) in [
            (FailureKind::NoSignatures, 10),
            (FailureKind::TagNotFound, 11),
            (FailureKind::NoMatchingSignature, 12),
            (FailureKind::NoAttestations, 14),
            (FailureKind::NoMatchingAttestation, 15),
        ] {
            assert_eq!(number_for(&Failure::error(kind, "x")), code, "{kind:?}");
            assert!(EXIT_CODES_HELP.contains(&format!("{code}  ")), "{code}");
        }
        assert_eq!(number_for(&anyhow::anyhow!("registry said no")), 1);
    }
}
