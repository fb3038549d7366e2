//! RFC 6962 / RFC 9162 Merkle tree hashes and inclusion proofs: what ties a log entry to the
//! tree head a log signed.

use sha2::{Digest as _, Sha256};

/// The most hashes an inclusion proof may hold: a tree of 2^64 leaves needs 64.
pub const MAX_PROOF_HASHES: usize = 64;

/// The leaf hash of an entry: SHA-256(0x00 || entry).
pub fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Why an inclusion proof does not prove inclusion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the proof has {got} hashes, a tree of this size needs {want}")]
    WrongLength { got: usize, want: usize },
    #[error("the proof leads to a root hash other than the one given (an altered entry or proof)")]
    RootMismatch,
}

/// The root hash a proof of `leaf` at `index` in a tree of `size` leaves leads to
/// (RFC 9162 section 2.1.3.2).
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &[u8; 32],
    proof: &[[u8; 32]],
) -> Result<[u8; 32], ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let want = inclusion_proof_length(index, size);
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    Ok(r)
}

/// How many hashes the inclusion proof of `index` in a tree of `size` has (RFC 9162's
/// "inner" hashes below the point where the paths of `index` and `size - 1` part, plus one per
/// left-hand subtree above it).
fn inclusion_proof_length(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Checks `proof` shows `leaf` at `index` in the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &[u8; 32],
    proof: &[[u8; 32]],
    root: &[u8; 32],
) -> Result<(), ProofError> {
    if &root_from_inclusion_proof(index, size, leaf, proof)? != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH from RFC 6962 section 2.1, the slow way.
    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// PATH(m, D) from RFC 6962 section 2.1.1.
    fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn every_leaf_of_trees_up_to_33() {
        for size in 1..=33usize {
            let leaves: Vec<[u8; 32]> = (0..size).map(|i| leaf_hash(&[i as u8])).collect();
            let root = mth(&leaves);
            for (i, leaf) in leaves.iter().enumerate() {
                let proof = path(i, &leaves);
                verify_inclusion(i as u64, size as u64, leaf, &proof, &root).unwrap();
                if !proof.is_empty() {
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert_eq!(
                        verify_inclusion(i as u64, size as u64, leaf, &bad, &root),
                        Err(ProofError::RootMismatch)
                    );
                    let short = &proof[1..];
                    assert!(matches!(
                        verify_inclusion(i as u64, size as u64, leaf, short, &root),
                        Err(ProofError::WrongLength { .. })
                    ));
                }
                let other = leaf_hash(b"other");
                assert!(verify_inclusion(i as u64, size as u64, &other, &proof, &root).is_err());
            }
        }
        assert!(matches!(
            verify_inclusion(5, 5, &[0; 32], &[], &[0; 32]),
            Err(ProofError::IndexOutOfRange { .. })
        ));
    }
}
