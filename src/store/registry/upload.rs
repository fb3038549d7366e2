//! Blob uploads: cross-repository mounts, monolithic uploads, and chunked uploads that
//! shrink their pieces under a body limit and resume where the registry says it stopped.

use super::auth::{auth_challenge, Scope};
use super::capabilities::{CHUNK_SIZE, MIN_CHUNK_SIZE};
use super::client::is_transient;
use super::client::{is_retryable, Body};
use super::errors::{connection_error, missing_repository, registry_error, RegistryError};
use super::RemoteRepository;
use crate::oci::{Descriptor, Digest, Repository};
use crate::store::stream::integrity_error;
use crate::store::{BlobSource, BlobStream, BlobTransfer, OnBytes};
use anyhow::{anyhow, bail, Result};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl RemoteRepository {
    /// Stores a blob: mounted from another repository of the registry when it can be, else
    /// uploaded in one request, or in pieces once a body limit or a broken connection says so.
    pub(super) async fn upload_blob(
        &self,
        blob: &Descriptor,
        source: &dyn BlobSource,
        on_bytes: OnBytes,
    ) -> Result<BlobTransfer> {
        // Same registry, other repository: ask the registry to link the blob instead of
        // moving its bytes.
        let mount_from = match source.mount_from() {
            Some(Repository::Registry { registry, name })
                if registry == &self.registry && name != &self.name =>
            {
                Some(name.as_str())
            }
            _ => None,
        };
        let integrity_failure = Arc::new(Mutex::new(None));
        let progress = Arc::new(UploadProgress::new(on_bytes));
        let mut attempt = 0;
        let mut try_mount = mount_from.is_some();
        // Set when a body limit refused the blob in one request, or when the connection broke
        // under a large one: from then on, in chunks, so that a break costs one piece rather
        // than the whole blob.
        let mut in_pieces = false;
        loop {
            let session = match self
                .start_upload(blob, if try_mount { mount_from } else { None })
                .await?
            {
                None => return Ok(BlobTransfer::Mounted),
                Some(session) => session,
            };
            try_mount = false;
            let chunked = in_pieces || session.chunk_min_length.is_some_and(|min| blob.size > min);
            let outcome = if chunked {
                self.upload_chunked(&session, blob, source, &progress, &mut attempt)
                    .await?
            } else {
                self.upload_once(
                    &session.location,
                    blob,
                    source,
                    progress.clone(),
                    &integrity_failure,
                )
                .await?
            };
            let failure = match outcome {
                Ok(()) => return Ok(BlobTransfer::Uploaded),
                Err(UploadFailure::Restart) => continue,
                Err(UploadFailure::Response(r))
                    if r.status() == StatusCode::PAYLOAD_TOO_LARGE && !chunked =>
                {
                    // Not a fault to retry: the same request would be refused again. A
                    // fresh session, in case the refusal spoilt this one.
                    in_pieces = true;
                    continue;
                }
                Err(failure @ UploadFailure::Transport(_))
                    if !chunked && blob.size > CHUNK_SIZE as u64 =>
                {
                    in_pieces = true;
                    failure
                }
                Err(UploadFailure::Response(r)) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(registry_error(
                        r,
                        &self.registry,
                        &format!("the end of an upload of blob {}", blob.digest),
                    )
                    .await)
                }
                Err(failure) => failure,
            };
            if attempt >= self.client.retries() {
                return Err(match failure {
                    UploadFailure::Response(r) => {
                        registry_error(
                            r,
                            &self.registry,
                            &format!("blob {} after {attempt} retries", blob.digest),
                        )
                        .await
                    }
                    UploadFailure::Transport(e) => {
                        connection_error(&self.registry, &Method::PUT, &session.location, e)
                    }
                    UploadFailure::Source(e) => {
                        anyhow!("cannot read {}: {e}", source.describe())
                    }
                    // Restarts never get here (see above); named for completeness.
                    UploadFailure::Restart => anyhow!(
                        "{} lost the upload session of blob {} after {attempt} retries",
                        self.registry,
                        blob.digest
                    ),
                });
            }
            let wait = match &failure {
                UploadFailure::Response(r) if r.status() == StatusCode::UNAUTHORIZED => {
                    let challenge = auth_challenge(r);
                    self.client
                        .authenticator()
                        .authenticate(&self.registry, &self.scope(true), challenge.as_deref())
                        .await?;
                    Duration::ZERO
                }
                UploadFailure::Response(r) => self.client.backoff(attempt, Some(r)),
                _ => self.client.backoff(attempt, None),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Starts an upload session, or mounts the blob from `from` (same registry). Returns
    /// `None` when the mount succeeded, else the session.
    async fn start_upload(
        &self,
        blob: &Descriptor,
        from: Option<&str>,
    ) -> Result<Option<UploadSession>> {
        let path = match from {
            Some(from) => format!(
                "/v2/{}/blobs/uploads/?mount={}&from={from}",
                self.name, blob.digest
            ),
            None => format!("/v2/{}/blobs/uploads/", self.name),
        };
        let scope = Scope {
            repository: &self.name,
            push: true,
            mount_from: from,
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let response = self
            .client
            .send(
                &self.registry,
                Method::POST,
                &path,
                headers,
                Body::Empty,
                scope,
            )
            .await?;
        match response.status() {
            StatusCode::CREATED if from.is_some() => Ok(None),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        anyhow!("{} started an upload without a Location", self.registry)
                    })?;
                let chunk_min_length = response
                    .headers()
                    .get("oci-chunk-min-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|&n| n > 0);
                Ok(Some(UploadSession {
                    location: self.absolute(location).await?,
                    chunk_min_length,
                }))
            }
            StatusCode::NOT_FOUND => {
                Err(missing_repository(response, &self.registry, &self.name).await)
            }
            _ => Err(registry_error(
                response,
                &self.registry,
                &format!("an upload to {}", self.name),
            )
            .await),
        }
    }

    /// The absolute URL of a `Location` the registry answered (often a path).
    async fn absolute(&self, location: &str) -> Result<String> {
        Ok(self.client.url(&self.registry, location).await?.to_string())
    }

    /// One attempt at streaming a blob's bytes into an upload session.
    async fn upload_once(
        &self,
        location: &str,
        blob: &Descriptor,
        source: &dyn BlobSource,
        progress: Arc<UploadProgress>,
        integrity_failure: &Arc<Mutex<Option<String>>>,
    ) -> Result<std::result::Result<(), UploadFailure>> {
        let stream: BlobStream = source.open().await?;
        let failure = integrity_failure.clone();
        let mut streamed = 0u64;
        let counted = stream.map(move |item| {
            match &item {
                Ok(chunk) => {
                    streamed += chunk.len() as u64;
                    progress.reached(streamed);
                }
                Err(e) => {
                    if integrity_error(e).is_some() {
                        *failure.lock().expect("failure slot") = Some(e.to_string());
                    }
                }
            }
            item
        });
        let url = self
            .client
            .url(&self.registry, &with_digest(location, &blob.digest))
            .await?;
        let mut request = self
            .client
            .http_for(&self.registry, &url)?
            .put(url.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, blob.size)
            .body(reqwest::Body::wrap_stream(counted));
        // Only the registry's own host gets its credentials (an upload location elsewhere,
        // such as a storage service, carries its own authorisation in the URL).
        if let Some(auth) =
            self.client
                .authenticator()
                .cached_auth(&self.registry, &url, &self.scope(true))
        {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let result = request.send().await;
        if let Some(msg) = integrity_failure.lock().expect("failure slot").take() {
            bail!("{msg}");
        }
        self.closing_put_outcome(result, location, blob, source)
            .await
    }

    /// What the PUT that ends an upload (with `?digest=`) came to: done, a failure worth
    /// another attempt (429/5xx, 401, connection trouble, 413 for a body too large), or an
    /// error.
    async fn closing_put_outcome(
        &self,
        result: reqwest::Result<Response>,
        location: &str,
        blob: &Descriptor,
        source: &dyn BlobSource,
    ) -> Result<std::result::Result<(), UploadFailure>> {
        match result {
            Ok(r) if r.status().is_success() => Ok(Ok(())),
            Ok(r)
                if is_retryable(r.status())
                    || r.status() == StatusCode::UNAUTHORIZED
                    || r.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Ok(Err(UploadFailure::Response(r)))
            }
            Ok(r) => {
                let err = registry_error(r, &self.registry, &format!("blob {}", blob.digest)).await;
                // The registry recomputed the digest of what it received (sources are not
                // hashed on the way out): the bytes at the source are not what they claim.
                let digest_refused = err.downcast_ref::<RegistryError>().is_some_and(|r| {
                    r.codes
                        .iter()
                        .any(|c| c == "DIGEST_INVALID" || c == "SIZE_INVALID")
                });
                if digest_refused {
                    return Err(anyhow!(
                        "{} does not match its descriptor: the registry computed another digest for what was read ({err})",
                        source.describe()
                    ));
                }
                Err(err)
            }
            Err(e) if is_transient(&e) => Ok(Err(UploadFailure::Transport(e))),
            Err(e) => Err(connection_error(&self.registry, &Method::PUT, location, e)),
        }
    }

    /// Uploads a blob in pieces, as the OCI distribution spec describes for chunked pushes:
    /// one `PATCH` per piece with its `Content-Range`, each to the `Location` the previous
    /// answer gave, then a `PUT ?digest=` without a body.
    ///
    /// This is the fallback for a body size limit in front of the registry (a 413 for the
    /// whole blob in one request, e.g. nginx's `client_max_body_size`) and for registries that
    /// ask for chunks of a minimum size (`OCI-Chunk-Min-Length`). At most one chunk is held in
    /// memory, so memory does not grow with the blob.
    ///
    /// Failures are handled per piece, keeping what the registry already accepted: a 413
    /// halves the piece size; a transient failure (429, 5xx, connection trouble) waits, then
    /// asks the registry how much it holds and resumes there. Those waits count against
    /// `attempt`, the blob's retry budget. When the session cannot be resumed, the answer is
    /// [`UploadFailure::Restart`] (already waited for and counted).
    async fn upload_chunked(
        &self,
        session: &UploadSession,
        blob: &Descriptor,
        source: &dyn BlobSource,
        progress: &UploadProgress,
        attempt: &mut u32,
    ) -> Result<std::result::Result<(), UploadFailure>> {
        let mut location = session.location.clone();
        let min_length = session.chunk_min_length.unwrap_or(0);
        let mut chunk_size = usize::try_from(min_length)
            .unwrap_or(usize::MAX)
            .max(self.host.piece_size());
        let mut reader = ChunkReader {
            stream: source.open().await?,
            leftover: Bytes::new(),
        };
        // Bytes the registry has accepted, all from the start of the blob.
        let mut accepted = 0u64;
        // Read from the source but not accepted yet: the bytes from `accepted` on.
        let mut pending = Bytes::new();
        loop {
            if pending.is_empty() {
                let remaining = blob.size.saturating_sub(accepted);
                let want = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(chunk_size);
                pending = match reader.read(want).await {
                    Ok(bytes) => bytes,
                    Err(e) if integrity_error(&e).is_some() => bail!("{e}"),
                    Err(e) => return Ok(Err(UploadFailure::Source(e))),
                };
                if pending.is_empty() {
                    break;
                }
            }
            let piece = pending.slice(..pending.len().min(chunk_size));
            let failure = match self.patch_piece(&location, accepted, &piece).await? {
                PatchOutcome::Accepted(next) => {
                    if let Some(next) = next {
                        location = next;
                    }
                    accepted += piece.len() as u64;
                    pending.advance(piece.len());
                    progress.reached(accepted);
                    continue;
                }
                PatchOutcome::TooLarge => {
                    // A body limit between us and the registry: send the rest in smaller
                    // pieces (what was accepted stays).
                    if piece.len() <= MIN_CHUNK_SIZE {
                        bail!(
                            "{} refused a {}-byte chunk of blob {} as too large (413 Payload \
                             Too Large): it, or a proxy in front of it, refuses even {} KiB \
                             request bodies; raise its body size limit (e.g. nginx \
                             client_max_body_size)",
                            self.registry,
                            piece.len(),
                            blob.digest,
                            MIN_CHUNK_SIZE / 1024
                        );
                    }
                    chunk_size = (piece.len() / 2).max(MIN_CHUNK_SIZE);
                    self.host.limit_piece_size(chunk_size);
                    continue;
                }
                PatchOutcome::Failed(failure) => failure,
            };
            if *attempt >= self.client.retries() {
                return Ok(Err(failure));
            }
            let wait = match &failure {
                UploadFailure::Response(r) => self.client.backoff(*attempt, Some(r)),
                _ => self.client.backoff(*attempt, None),
            };
            drop(failure);
            tokio::time::sleep(wait).await;
            *attempt += 1;
            // The piece may have arrived in part, entirely, or not at all: the registry says
            // how much it holds. Resume there if those bytes are still at hand.
            let held = self.upload_status(&location).await?;
            match held {
                Some((next, held))
                    if held >= accepted && held - accepted <= pending.len() as u64 =>
                {
                    location = next;
                    pending.advance((held - accepted) as usize);
                    accepted = held;
                    progress.reached(accepted);
                }
                _ => return Ok(Err(UploadFailure::Restart)),
            }
        }
        let url = with_digest(&location, &blob.digest);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let result = self
            .upload_request(Method::PUT, &url, headers, Some(Bytes::new()))
            .await?;
        self.closing_put_outcome(result, &location, blob, source)
            .await
    }

    /// Sends one piece of a chunked upload, starting at byte `start` of the blob.
    async fn patch_piece(&self, location: &str, start: u64, piece: &Bytes) -> Result<PatchOutcome> {
        let end = start + piece.len() as u64 - 1;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(piece.len()));
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("{start}-{end}")).expect("digits and a dash"),
        );
        let result = self
            .upload_request(Method::PATCH, location, headers, Some(piece.clone()))
            .await?;
        match result {
            Ok(r) if r.status().is_success() => {
                let next = match r
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                {
                    Some(next) => Some(self.absolute(next).await?),
                    None => None,
                };
                Ok(PatchOutcome::Accepted(next))
            }
            Ok(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Ok(PatchOutcome::TooLarge),
            // 416: the registry holds another amount than we think; asking it is the cure
            // for that as much as for a lost answer.
            Ok(r)
                if is_retryable(r.status()) || r.status() == StatusCode::RANGE_NOT_SATISFIABLE =>
            {
                Ok(PatchOutcome::Failed(UploadFailure::Response(r)))
            }
            Ok(r) => Err(registry_error(
                r,
                &self.registry,
                &format!("bytes {start}-{end} of an upload to {}", self.name),
            )
            .await),
            Err(e) if is_transient(&e) => Ok(PatchOutcome::Failed(UploadFailure::Transport(e))),
            Err(e) => Err(connection_error(
                &self.registry,
                &Method::PATCH,
                location,
                e,
            )),
        }
    }

    /// How many bytes an upload session holds (`GET` on its location, answered `204` with
    /// `Range: 0-<last>`), with the location to continue at. `None` when the registry cannot
    /// say: the session is gone, or the answer is not a usable count.
    async fn upload_status(&self, location: &str) -> Result<Option<(String, u64)>> {
        let response = match self
            .upload_request(Method::GET, location, HeaderMap::new(), None)
            .await?
        {
            Ok(r) if r.status().is_success() => r,
            _ => return Ok(None),
        };
        let Some(held) = upload_range_len(response.headers()) else {
            return Ok(None);
        };
        let next = match response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(next) => self.absolute(next).await?,
            None => location.to_string(),
        };
        Ok(Some((next, held)))
    }

    /// One request within an upload session, with its credentials, answering a 401 challenge
    /// once. Never retried here: whether an upload request may be repeated depends on what the
    /// registry kept, which the caller finds out.
    async fn upload_request(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Result<Response>> {
        let url = self.client.url(&self.registry, url).await?;
        self.client
            .send_once(
                &self.registry,
                method,
                &url,
                headers,
                || body.clone().map(reqwest::Body::from),
                &self.scope(true),
            )
            .await
    }
}

/// An upload session the registry opened.
struct UploadSession {
    /// Absolute URL of the session.
    location: String,
    /// `OCI-Chunk-Min-Length`: the registry wants chunks (all but the last) at least this big.
    chunk_min_length: Option<u64>,
}

/// `location` with the `digest` query parameter that closes an upload.
fn with_digest(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

/// The number of bytes an upload session holds, from the `Range: 0-<last>` of a status
/// answer. `None` for a missing or malformed header, and for `0-0`: distribution answers it
/// for an empty session and for one holding one byte alike.
fn upload_range_len(headers: &HeaderMap) -> Option<u64> {
    let range = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let (start, last) = range.split_once('-')?;
    let last: u64 = last.trim().parse().ok()?;
    if start.trim() != "0" || last == 0 {
        return None;
    }
    Some(last + 1)
}

/// A blob's upload progress, reported as the furthest byte reached: bytes sent again (a
/// retry, a resumed piece, the switch to chunks) are not counted twice.
struct UploadProgress {
    on_bytes: OnBytes,
    reported: AtomicU64,
}

impl UploadProgress {
    fn new(on_bytes: OnBytes) -> UploadProgress {
        UploadProgress {
            on_bytes,
            reported: AtomicU64::new(0),
        }
    }

    /// The first `position` bytes of the blob have been sent.
    fn reached(&self, position: u64) {
        let before = self.reported.fetch_max(position, Ordering::Relaxed);
        if position > before {
            (self.on_bytes)(position - before);
        }
    }
}

/// Cuts a blob stream into pieces of a chosen size, holding no more than one piece plus the
/// unread rest of the stream's last item.
struct ChunkReader {
    stream: BlobStream,
    leftover: Bytes,
}

impl ChunkReader {
    /// The next `limit` bytes; fewer only at the end of the stream, none after it.
    async fn read(&mut self, limit: usize) -> std::io::Result<Bytes> {
        if limit == 0 {
            return Ok(Bytes::new());
        }
        if self.leftover.is_empty() {
            match self.stream.next().await {
                Some(item) => self.leftover = item?,
                None => return Ok(Bytes::new()),
            }
        }
        // A stream item holding the whole piece is sliced, not copied.
        if self.leftover.len() >= limit {
            return Ok(self.leftover.split_to(limit));
        }
        let mut piece = BytesMut::with_capacity(limit);
        loop {
            let take = self.leftover.len().min(limit - piece.len());
            piece.extend_from_slice(&self.leftover.split_to(take));
            if piece.len() == limit {
                break;
            }
            match self.stream.next().await {
                Some(item) => self.leftover = item?,
                None => break,
            }
        }
        Ok(piece.freeze())
    }
}

/// What became of one `PATCH` of a chunked upload.
enum PatchOutcome {
    /// Accepted; the registry's `Location` for the next request, when it gave one.
    Accepted(Option<String>),
    /// 413: the body was too large for the registry or a proxy in front of it.
    TooLarge,
    Failed(UploadFailure),
}

/// Why an upload attempt failed in a way another attempt may cure.
enum UploadFailure {
    Response(Response),
    Transport(reqwest::Error),
    /// Reading the source broke off (not an integrity failure: those are errors).
    Source(std::io::Error),
    /// A chunked upload lost its session and has already waited and counted the attempt:
    /// start a new session at once.
    Restart,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_range_counts_held_bytes() {
        let range = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            upload_range_len(&h)
        };
        assert_eq!(range("0-1048575"), Some(1 << 20));
        assert_eq!(range("bytes=0-99"), Some(100));
        // Empty or one byte: distribution says `0-0` for both.
        assert_eq!(range("0-0"), None);
        assert_eq!(range("5-99"), None);
        assert_eq!(range("garbage"), None);
        assert_eq!(upload_range_len(&HeaderMap::new()), None);
    }

    #[test]
    fn digest_joins_the_location_query() {
        let d = Digest::of(b"x");
        assert_eq!(
            with_digest("http://r/u", &d),
            format!("http://r/u?digest={d}")
        );
        assert_eq!(
            with_digest("http://r/u?_state=abc", &d),
            format!("http://r/u?_state=abc&digest={d}")
        );
    }

    #[tokio::test]
    async fn chunk_reader_cuts_any_stream_into_pieces() {
        let items: Vec<std::io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::new()),
            Ok(Bytes::from_static(b"defghij")),
            Ok(Bytes::from_static(b"k")),
        ];
        let mut reader = ChunkReader {
            stream: Box::pin(futures_util::stream::iter(items)),
            leftover: Bytes::new(),
        };
        let mut pieces = Vec::new();
        for limit in [2, 4, 3, 5, 5] {
            pieces.push(reader.read(limit).await.unwrap());
        }
        assert_eq!(pieces, ["ab", "cdef", "ghi", "jk", ""]);
        assert_eq!(reader.read(0).await.unwrap(), "");
    }

    #[test]
    fn progress_counts_bytes_sent_again_once() {
        let total = Arc::new(AtomicU64::new(0));
        let sink = total.clone();
        let progress = UploadProgress::new(Arc::new(move |n| {
            sink.fetch_add(n, Ordering::Relaxed);
        }));
        progress.reached(100);
        progress.reached(60); // a retry starting over
        progress.reached(100);
        progress.reached(150);
        assert_eq!(total.load(Ordering::Relaxed), 150);
    }
}
