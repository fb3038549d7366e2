//! Blob byte streams, and the integrity check every blob read goes through.

use crate::oci::digest::{Digest, Hasher};
use bytes::Bytes;
use futures_util::Stream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Bytes that do not match the digest or size they were read under. Never retried: reading
/// them again gives the same wrong bytes.
#[derive(Debug, thiserror::Error)]
#[error("{what} does not match its descriptor: expected {expected_digest} ({expected_size} bytes), got {actual_digest} ({actual_size} bytes)")]
pub struct BlobIntegrityError {
    pub what: String,
    pub expected_digest: Digest,
    pub expected_size: u64,
    pub actual_digest: Digest,
    pub actual_size: u64,
}

/// Wraps a stream, hashing and counting as bytes pass; at the end, or as soon as more bytes
/// than expected arrive, a mismatch becomes an `io::Error` wrapping [`BlobIntegrityError`].
pub struct VerifyingStream {
    inner: BlobStream,
    hasher: Option<Hasher>,
    seen: u64,
    expected_digest: Digest,
    expected_size: u64,
    what: String,
}

impl VerifyingStream {
    pub fn new(
        inner: BlobStream,
        expected_digest: Digest,
        expected_size: u64,
        what: String,
    ) -> Self {
        VerifyingStream {
            inner,
            hasher: Some(Hasher::default()),
            seen: 0,
            expected_digest,
            expected_size,
            what,
        }
    }

    fn mismatch(&mut self, actual_digest: Digest) -> io::Error {
        io::Error::other(BlobIntegrityError {
            what: std::mem::take(&mut self.what),
            expected_digest: self.expected_digest.clone(),
            expected_size: self.expected_size,
            actual_digest,
            actual_size: self.seen,
        })
    }
}

impl Stream for VerifyingStream {
    type Item = io::Result<Bytes>;

    // The check happens as the last expected byte passes, not at end of stream: an HTTP
    // client that sends a body of known length stops polling once it has that many bytes, so a
    // check at end of stream would never run and the registry would be the one to complain.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                let Some(hasher) = self.hasher.as_mut() else {
                    // Bytes after the verified end: the blob is longer than its descriptor.
                    return Poll::Ready(Some(Err(self.mismatch(Digest::of(b"")))));
                };
                hasher.update(&chunk);
                if self.seen >= self.expected_size {
                    let actual = self.hasher.take().expect("checked above").finish();
                    if actual != self.expected_digest || self.seen != self.expected_size {
                        return Poll::Ready(Some(Err(self.mismatch(actual))));
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => match self.hasher.take() {
                // Ended early (or the blob is empty): check what we have.
                Some(hasher) => {
                    let actual = hasher.finish();
                    if actual != self.expected_digest || self.seen != self.expected_size {
                        return Poll::Ready(Some(Err(self.mismatch(actual))));
                    }
                    Poll::Ready(None)
                }
                None => Poll::Ready(None),
            },
            other => other,
        }
    }
}

/// Finds a [`BlobIntegrityError`] anywhere in an error chain (it may arrive wrapped by the
/// HTTP client that was sending the bytes).
pub fn integrity_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a BlobIntegrityError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<BlobIntegrityError>() {
            return Some(found);
        }
        if let Some(found) = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<BlobIntegrityError>())
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn chunks(parts: &[&'static [u8]]) -> BlobStream {
        let items: Vec<io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn drain(mut s: VerifyingStream) -> io::Result<u64> {
        let mut n = 0;
        while let Some(chunk) = s.next().await {
            n += chunk?.len() as u64;
        }
        Ok(n)
    }

    #[tokio::test]
    async fn passes_matching_bytes() {
        let s = VerifyingStream::new(chunks(&[b"ab", b"c"]), Digest::of(b"abc"), 3, "blob".into());
        assert_eq!(drain(s).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn fails_on_wrong_bytes_and_is_findable() {
        let s = VerifyingStream::new(chunks(&[b"abd"]), Digest::of(b"abc"), 3, "blob x".into());
        let err = drain(s).await.unwrap_err();
        let found = integrity_error(&err).expect("integrity error in chain");
        assert_eq!(found.actual_digest, Digest::of(b"abd"));
        assert!(err.to_string().contains("blob x does not match"));
    }

    #[tokio::test]
    async fn fails_with_the_last_expected_byte_not_after_it() {
        let mut s = VerifyingStream::new(chunks(&[b"ab", b"d"]), Digest::of(b"abc"), 3, "b".into());
        assert!(s.next().await.unwrap().is_ok());
        assert!(
            s.next().await.unwrap().is_err(),
            "the chunk completing the size is refused"
        );
    }

    #[tokio::test]
    async fn fails_on_too_few_bytes() {
        let s = VerifyingStream::new(chunks(&[b"ab"]), Digest::of(b"abc"), 3, "b".into());
        assert!(drain(s).await.is_err());
    }

    #[tokio::test]
    async fn fails_early_on_too_many_bytes() {
        let s = VerifyingStream::new(chunks(&[b"abcd", b"e"]), Digest::of(b"abc"), 3, "b".into());
        assert!(drain(s).await.is_err());
    }
}
