//! A repository in a remote registry, over the OCI distribution API.
//!
//! This speaks HTTP itself (reqwest, the client oci-client is built on) rather than through
//! oci-client, because byte-for-byte, frugal, restartable transfers need what oci-client does not
//! expose: response headers (`Retry-After`, `Docker-Content-Digest`, `OCI-Subject`), a mount
//! answered with 202, upload bodies that can be reopened on retry, and per-registry TLS choices.
//!
//! [`client`] sends requests (authenticating through [`auth`], retrying, reading documents
//! within their limits), [`upload`] moves blobs, [`errors`] turns failures into messages, and
//! [`capabilities`] is the one place for what each host has shown of itself and the limits
//! every answer is held to.

mod auth;
mod capabilities;
mod client;
mod errors;
mod upload;

pub use client::{InsecureRegistries, RegistryClient, RegistryOptions};
pub use errors::RegistryError;

use auth::Scope;
use capabilities::DocumentKind;
use client::{is_retryable, is_transient, Body, Document};
use errors::{connection_error, registry_error};

use super::{BlobSource, BlobStream, BlobTransfer, ManifestRef, OnBytes, Store, TagRead, TagWrite};
use crate::oci::{media, Descriptor, Digest, RawManifest, Repository};
use crate::text;
use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One repository of a registry.
pub struct RemoteRepository {
    client: Arc<RegistryClient>,
    repository: Repository,
    registry: String,
    name: String,
    /// What the registry's host has shown of itself (shared with its other repositories).
    host: Arc<capabilities::HostCapabilities>,
}

impl RemoteRepository {
    pub fn new(client: Arc<RegistryClient>, repository: Repository) -> RemoteRepository {
        let Repository::Registry { registry, name } = &repository else {
            panic!("RemoteRepository needs a registry repository");
        };
        RemoteRepository {
            host: client.capabilities.host(registry),
            registry: registry.clone(),
            name: name.clone(),
            client,
            repository,
        }
    }

    fn scope(&self, push: bool) -> Scope<'_> {
        Scope {
            repository: &self.name,
            push,
            mount_from: None,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Body,
        push: bool,
    ) -> Result<Response> {
        self.client
            .send(
                &self.registry,
                method,
                path,
                headers,
                body,
                self.scope(push),
            )
            .await
    }

    /// Reads a document whole (within `kind`'s limit); `what` names it in errors.
    async fn get_document(
        &self,
        path: &str,
        headers: HeaderMap,
        kind: DocumentKind,
        what: &str,
    ) -> Result<Document> {
        self.client
            .get_document(&self.registry, path, headers, self.scope(false), kind, what)
            .await
    }

    fn manifest_path(&self, reference: ManifestRef<'_>) -> String {
        let r = match reference {
            ManifestRef::Tag(t) => t.to_string(),
            ManifestRef::Digest(d) => d.to_string(),
        };
        format!("/v2/{}/manifests/{r}", self.name)
    }

    fn accept_manifests() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(media::MANIFEST_ACCEPT),
        );
        h
    }
}

#[async_trait]
impl Store for RemoteRepository {
    fn repository(&self) -> &Repository {
        &self.repository
    }

    async fn resolve(&self, reference: ManifestRef<'_>) -> Result<Option<Descriptor>> {
        let path = self.manifest_path(reference);
        let response = self
            .send(
                Method::HEAD,
                &path,
                Self::accept_manifests(),
                Body::Empty,
                false,
            )
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => {
                return Err(registry_error(
                    response,
                    &self.registry,
                    &format!("looking up {reference} in {}", self.name),
                )
                .await)
            }
        }
        let headers = response.headers();
        let digest = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let media_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .filter(|m| media::is_manifest(m));
        let size = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match (digest, media_type, size) {
            (Some(digest), Some(media_type), Some(size)) => {
                if let ManifestRef::Digest(wanted) = reference {
                    if &digest != wanted {
                        bail!(
                            "{} answered {digest} when asked for {wanted}",
                            self.registry
                        );
                    }
                }
                Ok(Some(Descriptor::new(&media_type, digest, size)))
            }
            // Some registries omit headers on HEAD: fetch the manifest instead.
            _ => Ok(self.get_manifest(reference).await?.map(|m| m.descriptor())),
        }
    }

    async fn get_manifest(&self, reference: ManifestRef<'_>) -> Result<Option<RawManifest>> {
        Ok(self.fetch_manifest(reference).await?.0)
    }

    async fn read_tag(&self, tag: &str) -> Result<TagRead> {
        let (manifest, sent) = self.fetch_manifest(ManifestRef::Tag(tag)).await?;
        Ok(TagRead { manifest, sent })
    }

    async fn put_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()> {
        let reference = match tag {
            Some(t) => ManifestRef::Tag(t),
            None => ManifestRef::Digest(&manifest.digest),
        };
        let response = self
            .put_manifest_request(manifest, reference, HeaderMap::new())
            .await?;
        self.check_manifest_put(response, manifest, reference).await
    }

    async fn put_manifest_if(
        &self,
        manifest: &RawManifest,
        tag: &str,
        base: &TagRead,
    ) -> Result<TagWrite> {
        // Registries rarely honour conditional manifest writes (distribution ignores them);
        // the condition is sent anyway, 412 meaning we lost.
        let mut headers = HeaderMap::new();
        match base.digest() {
            Some(d) => headers.insert(
                header::IF_MATCH,
                HeaderValue::from_str(&format!("\"{d}\""))?,
            ),
            None => headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*")),
        };
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&manifest.media_type)
                .map_err(|_| anyhow!("invalid media type {:?}", manifest.media_type))?,
        );
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(manifest.bytes.len()),
        );
        let reference = ManifestRef::Tag(tag);
        let url = self
            .client
            .url(&self.registry, &self.manifest_path(reference))
            .await?;
        let max_age = self.host.tag_write_age_limit();
        let stale = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let result = self
            .client
            .send_once(
                &self.registry,
                Method::PUT,
                &url,
                headers,
                || {
                    Some(fresh_only_body(
                        manifest.bytes.clone(),
                        base.sent,
                        max_age,
                        stale.clone(),
                    ))
                },
                &self.scope(true),
            )
            .await?;
        if stale.load(Ordering::SeqCst) {
            return Ok(TagWrite::Superseded);
        }
        // Whatever failed here may have landed or not: never resend this body (another
        // writer may have written since it was merged); the caller reads again.
        match result {
            Ok(r) if r.status() == StatusCode::PRECONDITION_FAILED => Ok(TagWrite::Superseded),
            Ok(r) if is_retryable(r.status()) => {
                let retry_after = self.client.backoff(0, Some(&r));
                let error = registry_error(
                    r,
                    &self.registry,
                    &format!(
                        "manifest {} as {reference} in {}",
                        manifest.digest, self.name
                    ),
                )
                .await;
                Ok(TagWrite::Interrupted { error, retry_after })
            }
            Ok(r) => {
                if r.status().is_success() {
                    self.host.record_tag_write(started.elapsed());
                }
                self.check_manifest_put(r, manifest, reference).await?;
                Ok(TagWrite::Written)
            }
            Err(e) if is_transient(&e) => Ok(TagWrite::Interrupted {
                error: connection_error(&self.registry, &Method::PUT, url.as_str(), e),
                retry_after: self.client.backoff(0, None),
            }),
            Err(e) => Err(connection_error(
                &self.registry,
                &Method::PUT,
                url.as_str(),
                e,
            )),
        }
    }

    fn overwrite_window(&self) -> Option<Duration> {
        Some(self.host.overwrite_window())
    }

    async fn blob_exists(&self, blob: &Descriptor) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{}", self.name, blob.digest);
        let response = self
            .send(Method::HEAD, &path, HeaderMap::new(), Body::Empty, false)
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(registry_error(
                response,
                &self.registry,
                &format!("checking blob {}", blob.digest),
            )
            .await),
        }
    }

    async fn open_blob_raw(&self, blob: &Descriptor) -> Result<BlobStream> {
        let path = format!("/v2/{}/blobs/{}", self.name, blob.digest);
        let response = self
            .send(Method::GET, &path, HeaderMap::new(), Body::Empty, false)
            .await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                bail!("blob {} is missing from {}", blob.digest, self.repository)
            }
            _ => {
                return Err(registry_error(
                    response,
                    &self.registry,
                    &format!("reading blob {}", blob.digest),
                )
                .await)
            }
        }
        let stream = response
            .bytes_stream()
            .map(|item| item.map_err(std::io::Error::other));
        Ok(Box::pin(stream))
    }

    async fn put_blob(
        &self,
        blob: &Descriptor,
        source: &dyn BlobSource,
        on_bytes: OnBytes,
    ) -> Result<BlobTransfer> {
        self.upload_blob(blob, source, on_bytes).await
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let what = format!("the tag list of {}", self.repository);
        let mut tags = Vec::new();
        let mut pages = Pages::default();
        let mut next = Some(format!("/v2/{}/tags/list", self.name));
        while let Some(path) = next.take() {
            let doc = self
                .get_document(&path, HeaderMap::new(), DocumentKind::TagList, &what)
                .await?;
            match doc.status {
                StatusCode::NOT_FOUND => return Ok(Vec::new()),
                s if s.is_success() => {}
                _ => {
                    return Err(doc.error(&self.registry, &format!("listing tags of {}", self.name)))
                }
            }
            #[derive(serde::Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let list: TagList = serde_json::from_slice(&doc.body)
                .with_context(|| format!("{} answered a malformed tag list", self.registry))?;
            tags.extend(list.tags.unwrap_or_default());
            if tags.len() > capabilities::MAX_TAGS {
                bail!(
                    "{what}: {} listed more than {} tags; wharf stops there",
                    self.registry,
                    capabilities::MAX_TAGS
                );
            }
            next = match next_page_link(&doc.headers) {
                None => None,
                Some(link) => {
                    let url = self.client.url(&self.registry, &link).await?;
                    if !self
                        .client
                        .authenticator()
                        .may_authenticate(&self.registry, &url)
                    {
                        bail!(
                            "{what}: {} continues it at {}, not on its own host (or not over \
                             HTTPS); wharf does not follow it there",
                            self.registry,
                            text::excerpt(url.as_str(), 200)
                        );
                    }
                    pages
                        .next(&url)
                        .map_err(|e| anyhow!("{what}: {}: {e}", self.registry))?;
                    Some(url.to_string())
                }
            };
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    async fn referrers(&self, digest: &Digest) -> Result<Option<Vec<Descriptor>>> {
        if self.host.referrers_api.get() == Some(&false) {
            return Ok(None);
        }
        let path = format!("/v2/{}/referrers/{digest}", self.name);
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(media::OCI_INDEX));
        let what = format!("the referrers of {digest} in {}", self.repository);
        let doc = self
            .get_document(&path, headers, DocumentKind::Referrers, &what)
            .await?;
        // A registry with the API answers 200 (an empty index when nothing refers to the
        // digest); anything else means no API.
        if !doc.status.is_success() {
            let _ = self.host.referrers_api.set(false);
            return Ok(None);
        }
        let _ = self.host.referrers_api.set(true);
        let index: crate::oci::manifest::ImageIndex = serde_json::from_slice(&doc.body)
            .with_context(|| {
                format!(
                    "{} answered a malformed referrers index for {digest}",
                    self.registry
                )
            })?;
        Ok(Some(index.manifests))
    }
}

/// A manifest body whose last byte is sent only while the read the write is based on (sent
/// at `read_sent`) is younger than `max_age`; otherwise the body breaks off, `stale` is set,
/// and the registry, which applies a manifest only once it has all of it, writes nothing.
/// Checked as the last byte goes, not before sending: connecting, or a busy machine, can take
/// long between the two.
fn fresh_only_body(
    bytes: bytes::Bytes,
    read_sent: Instant,
    max_age: Duration,
    stale: Arc<AtomicBool>,
) -> reqwest::Body {
    let split = bytes.len().saturating_sub(1);
    let (head, tail) = (bytes.slice(..split), bytes.slice(split..));
    let head = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) });
    let tail = futures_util::stream::once(async move {
        if read_sent.elapsed() > max_age {
            stale.store(true, Ordering::SeqCst);
            return Err(std::io::Error::other(
                "the read this write is based on is too old: read again",
            ));
        }
        Ok(tail)
    });
    reqwest::Body::wrap_stream(head.chain(tail))
}

/// The pages of a paged listing seen so far: a registry sending the same page or cursor
/// again, or pages without end, would keep a reader going forever.
#[derive(Default)]
struct Pages {
    urls: std::collections::HashSet<String>,
    cursors: std::collections::HashSet<String>,
}

impl Pages {
    /// Records the next page to read; refuses a repeated page or cursor (`last`), and more
    /// than [`capabilities::MAX_TAG_PAGES`] pages.
    fn next(&mut self, url: &reqwest::Url) -> std::result::Result<(), String> {
        if self.urls.len() + 2 > capabilities::MAX_TAG_PAGES {
            return Err(format!(
                "more than {} pages; wharf stops there",
                capabilities::MAX_TAG_PAGES
            ));
        }
        let cursor = url
            .query_pairs()
            .find(|(k, _)| k == "last")
            .map(|(_, v)| v.into_owned());
        let repeated_url = !self.urls.insert(url.to_string());
        let repeated_cursor = cursor
            .as_ref()
            .is_some_and(|c| !self.cursors.insert(c.clone()));
        if repeated_url || repeated_cursor {
            return Err(format!(
                "the next page ({}) repeats an earlier one: a paging loop",
                text::excerpt(url.as_str(), 200)
            ));
        }
        Ok(())
    }
}

/// The target of a `Link: <...>; rel="next"` header (a link without `rel` counts as next).
fn next_page_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';').unwrap_or((link, ""));
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            let rel = params.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("rel")).then(|| v.trim().trim_matches('"'))
            });
            matches!(rel, None | Some("next")).then(|| target.to_string())
        })
}

impl RemoteRepository {
    /// A manifest's exact bytes (`None`: absent), and when the read that got them was sent.
    async fn fetch_manifest(
        &self,
        reference: ManifestRef<'_>,
    ) -> Result<(Option<RawManifest>, std::time::Instant)> {
        let path = self.manifest_path(reference);
        let what = format!("manifest {reference} in {}", self.repository);
        let doc = self
            .get_document(
                &path,
                Self::accept_manifests(),
                DocumentKind::Manifest,
                &what,
            )
            .await?;
        match doc.status {
            StatusCode::NOT_FOUND => return Ok((None, doc.sent)),
            s if s.is_success() => {}
            _ => {
                return Err(doc.error(
                    &self.registry,
                    &format!("reading {reference} in {}", self.name),
                ))
            }
        }
        let content_type = doc
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = doc.body;
        let manifest = RawManifest::new(bytes, content_type.as_deref())
            .with_context(|| format!("manifest {reference} in {}", self.repository))?;
        if let ManifestRef::Digest(wanted) = reference {
            if &manifest.digest != wanted {
                bail!(
                    "{} returned a manifest whose bytes hash to {} when asked for {wanted}",
                    self.registry,
                    manifest.digest
                );
            }
        }
        Ok((Some(manifest), doc.sent))
    }

    async fn put_manifest_request(
        &self,
        manifest: &RawManifest,
        reference: ManifestRef<'_>,
        mut headers: HeaderMap,
    ) -> Result<Response> {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&manifest.media_type)
                .map_err(|_| anyhow!("invalid media type {:?}", manifest.media_type))?,
        );
        let path = self.manifest_path(reference);
        self.send(
            Method::PUT,
            &path,
            headers,
            Body::Bytes(manifest.bytes.clone()),
            true,
        )
        .await
    }

    async fn check_manifest_put(
        &self,
        response: Response,
        manifest: &RawManifest,
        reference: ManifestRef<'_>,
    ) -> Result<()> {
        if !response.status().is_success() {
            let what = format!(
                "manifest {} ({}) as {reference} in {}",
                manifest.digest, manifest.media_type, self.name
            );
            return Err(registry_error(response, &self.registry, &what).await);
        }
        if let Some(stored) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if stored != manifest.digest.as_str() {
                bail!(
                    "{} stored manifest {} as {stored}: the registry rewrote it",
                    self.registry,
                    manifest.digest
                );
            }
        }
        Ok(())
    }
}
