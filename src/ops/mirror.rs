//! `wharf mirror`: copy a release with everything attached to it, byte for byte.
//!
//! Order: the image graph; then, for every manifest in it (and, recursively, every attached
//! artifact), cosign's `.sig`/`.att`/`.sbom` tags and OCI referrers, each artifact's content
//! before the tag or index that names it; the requested tags last. An interrupted mirror can be
//! rerun: whatever already arrived is skipped after one HEAD.

use super::attest::platform_manifest;
use super::copy::{
    check_blobs_present, copy_graph_for_tag, copy_graph_sharing, put_tag, CopyStats, SentBlobs,
};
use super::copy_only::CopyOnly;
use super::graph::{read_graph, read_graph_from, Graph};
use super::referrers;
use crate::oci::{Descriptor, Digest, ImageRef, Manifest, Platform, RawManifest};
use crate::report::Report;
use crate::store::attach::{Attached, Attacher, TagChange};
use crate::store::{resolve_reference, ManifestRef, Store, Stores};
use crate::ui::Progress;
use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Mutex;

pub struct MirrorRequest {
    pub source: ImageRef,
    pub dest: ImageRef,
    pub tags: Vec<String>,
    pub jobs: usize,
}

#[derive(Debug, Default, Serialize, Clone)]
pub struct ArtifactCounts {
    pub signatures: u64,
    pub attestations: u64,
    pub sboms: u64,
    pub referrers: u64,
    /// Attachments the destination already had.
    pub unchanged: u64,
    /// Tag-scheme manifests whose destination copy held layers the source lacks: merged
    /// instead of overwritten, so they are not byte-identical.
    pub merged: u64,
    pub referrer_indexes_written: u64,
}

#[derive(Debug, Serialize)]
pub struct MirroredManifest {
    pub platform: Option<String>,
    pub digest: String,
}

#[derive(Debug, Serialize)]
pub struct MirrorReport {
    pub source: String,
    pub destination: String,
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub reference: String,
    pub manifests: Vec<MirroredManifest>,
    pub tags: Vec<String>,
    /// Tags that had to be written (0 when they already pointed at the image).
    pub tags_written: u64,
    pub artifacts: ArtifactCounts,
    pub stats: CopyStats,
}

impl MirrorReport {
    /// Whether the mirror changed anything at the destination.
    pub fn wrote_anything(&self) -> bool {
        let a = &self.artifacts;
        let s = &self.stats;
        self.tags_written > 0
            || s.manifests_written > 0
            || s.blobs_uploaded > 0
            || s.blobs_mounted > 0
            || a.signatures
                + a.attestations
                + a.sboms
                + a.referrers
                + a.referrer_indexes_written
                + a.merged
                > 0
    }
}

/// A tag or index write that waits for the image to be complete.
enum Pending {
    TagArtifact {
        tag: String,
        manifest: RawManifest,
        kind: &'static str,
    },
    FallbackIndex {
        subject: Digest,
        referrers: Vec<Descriptor>,
        exact: Option<RawManifest>,
    },
}

struct Mirror<'a> {
    src: &'a dyn Store,
    dst: &'a dyn Store,
    /// Both tag lists, read once: a `.sig`/`.att`/`.sbom` or fallback-index tag that is not
    /// listed is not looked up (on a fresh destination, that is every one). `None` when a
    /// registry would not list them (a push-only credential): then every tag is looked up.
    source_tags: Option<HashSet<String>>,
    dest_tags: Option<HashSet<String>>,
    /// Blobs sent or being sent by the copies of this run (see [`SentBlobs`]).
    sent_blobs: SentBlobs,
    jobs: usize,
    /// Which attachments to take along (`wharf copy --only`).
    only: &'a CopyOnly,
    progress: &'a Progress,
    stats: Mutex<CopyStats>,
    counts: Mutex<ArtifactCounts>,
    pending: Mutex<Vec<Pending>>,
}

const TAG_KINDS: [&str; 3] = super::copy_only::KINDS;

impl Mirror<'_> {
    async fn copy(&self, graph: &Graph) -> Result<()> {
        if self.src.repository().is_layout() {
            check_blobs_present(self.src, graph, self.jobs).await?;
        }
        let stats = copy_graph_sharing(
            self.src,
            self.dst,
            graph,
            self.jobs,
            self.progress,
            &self.sent_blobs,
        )
        .await?;
        self.stats.lock().expect("stats").add(&stats);
        Ok(())
    }

    /// Copies an attachment whose root is written later, under its tag (`root_absent`: that
    /// tag was not at the destination).
    async fn copy_for_tag(&self, graph: &Graph, root_absent: bool) -> Result<()> {
        if self.src.repository().is_layout() {
            check_blobs_present(self.src, graph, self.jobs).await?;
        }
        let stats = copy_graph_for_tag(
            self.src,
            self.dst,
            graph,
            self.jobs,
            self.progress,
            root_absent,
            &self.sent_blobs,
        )
        .await?;
        self.stats.lock().expect("stats").add(&stats);
        Ok(())
    }

    fn count(&self, f: impl FnOnce(&mut ArtifactCounts)) {
        f(&mut self.counts.lock().expect("counts"));
    }

    /// Copies everything attached to `subject`; returns the attached manifests' digests, whose
    /// own attachments are copied next.
    async fn attachments(&self, subject: &Digest) -> Result<Vec<Digest>> {
        let mut found = Vec::new();
        for kind in TAG_KINDS {
            let tag = format!("{}.{kind}", subject.tag_prefix());
            if !self.only.tag_kind(kind) || !may_have(&self.source_tags, &tag) {
                continue;
            }
            // By tag, in one request: the digest is the hash of the bytes.
            let Some(source) = self.src.get_manifest(ManifestRef::Tag(&tag)).await? else {
                continue;
            };
            found.push(source.digest.clone());
            if may_have(&self.dest_tags, &tag) {
                let dst_desc = self.dst.resolve(ManifestRef::Tag(&tag)).await?;
                if dst_desc.as_ref().map(|d| &d.digest) == Some(&source.digest) {
                    self.count(|c| c.unchanged += 1);
                    continue;
                }
            }
            let graph = read_graph_from(self.src, source, self.jobs).await?;
            let root_absent = !may_have(&self.dest_tags, &tag);
            self.copy_for_tag(&graph, root_absent)
                .await
                .with_context(|| format!("copying {tag}"))?;
            self.pending
                .lock()
                .expect("pending")
                .push(Pending::TagArtifact {
                    tag,
                    manifest: graph.root().manifest.clone(),
                    kind,
                });
        }

        let (mut referrers, mut exact_index) =
            referrers::list_with(self.src, subject, self.source_tags.as_ref()).await?;
        if self.only.is_selective() {
            let before = referrers.len();
            referrers.retain(|r| self.only.referrer(r));
            if referrers.len() != before {
                // A fallback index listing what was left behind is not copied as it is.
                exact_index = None;
            }
        }
        if !referrers.is_empty() {
            for referrer in &referrers {
                found.push(referrer.digest.clone());
                if self
                    .dst
                    .resolve(ManifestRef::Digest(&referrer.digest))
                    .await?
                    .is_some()
                {
                    self.count(|c| c.unchanged += 1);
                    continue;
                }
                let graph = read_graph(self.src, referrer, self.jobs).await?;
                self.copy(&graph).await.with_context(|| {
                    format!("copying referrer {} of {subject}", referrer.digest)
                })?;
                self.count(|c| c.referrers += 1);
            }
            self.pending
                .lock()
                .expect("pending")
                .push(Pending::FallbackIndex {
                    subject: subject.clone(),
                    referrers,
                    exact: exact_index,
                });
        }
        Ok(found)
    }

    /// Writes the tags and indexes that name attachments, once the image itself is complete:
    /// a failed mirror leaves no tag of any kind behind. Checks at the end that concurrent
    /// writers at the destination did not drop any of it.
    async fn write_pending(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("pending"));
        let attacher = Attacher::new(self.dst);
        // Each names its own tag: they are written side by side.
        stream::iter(pending)
            .map(|write| self.write_one(&attacher, write))
            .buffer_unordered(self.jobs)
            .try_collect::<Vec<()>>()
            .await?;
        attacher.finish().await
    }

    async fn write_one(&self, attacher: &Attacher<'_>, write: Pending) -> Result<()> {
        match write {
            Pending::TagArtifact {
                tag,
                manifest,
                kind,
            } => {
                let merged = self.write_tag_artifact(attacher, &tag, manifest).await?;
                self.count(|c| {
                    match kind {
                        "sig" => c.signatures += 1,
                        "att" => c.attestations += 1,
                        _ => c.sboms += 1,
                    }
                    if merged {
                        c.merged += 1;
                    }
                });
            }
            // A registry with the referrers API indexes them itself; otherwise keep the
            // fallback tag index up to date. (A layout indexes nothing by itself, even one
            // that lists referrers it holds.)
            Pending::FallbackIndex {
                subject,
                referrers,
                exact,
            } => {
                if (self.dst.repository().is_layout()
                    || self.dst.referrers(&subject).await?.is_none())
                    && attacher
                        .apply(TagChange::index_entries(&subject, referrers, exact))
                        .await?
                        == Attached::Added
                {
                    self.count(|c| c.referrer_indexes_written += 1);
                }
            }
        }
        Ok(())
    }

    /// Writes a `.sig`/`.att`/`.sbom` manifest at its tag: the source's exact bytes, unless the
    /// destination's copy holds layers the source lacks (signatures added at the mirror), which
    /// are kept by merging. Returns whether it merged.
    async fn write_tag_artifact(
        &self,
        attacher: &Attacher<'_>,
        tag: &str,
        source: RawManifest,
    ) -> Result<bool> {
        if let Manifest::Index(_) = source.parse()? {
            self.dst.put_manifest(&source, Some(tag)).await?;
            return Ok(false);
        }
        let (change, merged) = TagChange::mirrored_layers(tag, source)?;
        let written = attacher.apply(change).await? == Attached::Added;
        Ok(written && merged.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// A store's tags, or `None` when it will not list them: a credential may allow pushing
/// and pulling but not listing, and the listing only saves requests, so the mirror then looks
/// each tag up instead (any real problem with the registry shows on those requests).
async fn tag_set(store: &dyn Store) -> Option<HashSet<String>> {
    store
        .list_tags()
        .await
        .ok()
        .map(|tags| tags.into_iter().collect())
}

/// Whether `tag` may be in a store whose tags are `listed` (anything may, when unlisted).
fn may_have(listed: &Option<HashSet<String>>, tag: &str) -> bool {
    listed.as_ref().is_none_or(|tags| tags.contains(tag))
}

pub async fn mirror(
    stores: &Stores,
    request: &MirrorRequest,
    progress: &Progress,
) -> Result<MirrorReport> {
    mirror_only(stores, request, &CopyOnly::all(), progress).await
}

/// `cosign copy`: a mirror of one platform's manifest when `platform` is given, taking along
/// only what `only` selects, that refuses (unless `force`) to move a destination tag naming
/// another image, as cosign's copy does.
pub async fn copy(
    stores: &Stores,
    mut request: MirrorRequest,
    only: &CopyOnly,
    platform: Option<&Platform>,
    force: bool,
    progress: &Progress,
) -> Result<MirrorReport> {
    let src = stores.open(&request.source).await?;
    let root = resolve_reference(src.as_ref(), &request.source).await?;
    let (digest, _) = platform_manifest(src.as_ref(), &root.digest, platform).await?;
    if platform.is_some() {
        // The platform's manifest is the image now; the source tag names the index.
        request.dest.tag = request.dest.tag.take().or(request.source.tag.take());
        request.source = request.source.with_digest(digest.clone());
        request.source.tag = None;
    }
    if !force && !only.is_selective() {
        let dst = stores.open(&request.dest).await?;
        for tag in requested_tags(&request) {
            if let Some(current) = dst.resolve(ManifestRef::Tag(&tag)).await? {
                if current.digest != digest {
                    bail!(
                        "{}:{tag} already exists and names {}, not {digest}: pass --force to move it",
                        dst.repository(),
                        current.digest
                    );
                }
            }
        }
    }
    mirror_only(stores, &request, only, progress).await
}

/// [`mirror`], taking along only the attachments `only` selects. A selective copy writes no
/// tag (as cosign's `copy --only`): the image arrives by digest, its attachments by theirs.
pub async fn mirror_only(
    stores: &Stores,
    request: &MirrorRequest,
    only: &CopyOnly,
    progress: &Progress,
) -> Result<MirrorReport> {
    let src = stores.open(&request.source).await?;
    let root = resolve_reference(src.as_ref(), &request.source).await?;
    if let Some(wanted) = &request.dest.digest {
        if wanted != &root.digest {
            bail!(
                "{} resolves to {}, not {wanted} as the destination reference says",
                request.source,
                root.digest
            );
        }
    }
    let graph = read_graph(src.as_ref(), &root, request.jobs).await?;
    if src.repository().is_layout() {
        // Before the destination is touched: a layout missing a blob (or holding something
        // that is not one) stops here, with nothing written anywhere.
        check_blobs_present(src.as_ref(), &graph, request.jobs).await?;
    }
    // Signatures read from a separate repository (COSIGN_REPOSITORY) arrive beside the
    // destination image, as `cosign copy` writes them: where a verifier finds them unconfigured.
    let dst = stores
        .with_attachments_beside_images()
        .open_for_write(&request.dest)
        .await?;
    let (source_tags, dest_tags) =
        futures_util::join!(tag_set(src.as_ref()), tag_set(dst.as_ref()));
    let mut tags = requested_tags(request);
    if only.is_selective() {
        tags.clear();
    }
    let mirror = Mirror {
        src: src.as_ref(),
        dst: dst.as_ref(),
        source_tags,
        dest_tags,
        sent_blobs: SentBlobs::default(),
        jobs: request.jobs.max(1),
        only,
        progress,
        stats: Mutex::default(),
        counts: Mutex::default(),
        pending: Mutex::default(),
    };
    let tags_in_place = mirror.tags_in_place(&graph, &tags).await?;
    // The image and its attachments travel side by side: attachments name the image by
    // digest only, and nothing points a tag at either until both are complete (below).
    let copy_image = async {
        if tags_in_place.is_empty() {
            mirror.copy(&graph).await
        } else {
            mirror.stats.lock().expect("stats").manifests_skipped += graph.nodes.len() as u64;
            Ok(())
        }
    };
    futures_util::try_join!(copy_image, mirror.copy_attachments(&graph))?;
    mirror.write_pending().await?;
    // Tags last: the image and everything attached to it are in place.
    let tags_written = mirror.write_tags(&graph, &tags, &tags_in_place).await?;
    dst.commit().await?;
    Ok(mirror.report(&graph, tags, tags_written))
}

/// The tags the destination gets: the source's, the destination reference's and `--tag`s.
/// The tags a mirror writes at its destination: the source's, the destination's, `--tag`s.
fn requested_tags(request: &MirrorRequest) -> Vec<String> {
    let mut tags: Vec<String> = request
        .source
        .tag
        .iter()
        .chain(request.dest.tag.iter())
        .chain(&request.tags)
        .cloned()
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

impl Mirror<'_> {
    /// The requested tags that already name the image at the destination. Such a tag tells
    /// the image is complete there: wharf writes a tag only once everything under it is in
    /// place. (Attachments are still checked: the source may have gained signatures since.)
    async fn tags_in_place(&self, graph: &Graph, tags: &[String]) -> Result<HashSet<String>> {
        let mut in_place = HashSet::new();
        for tag in tags.iter().filter(|t| may_have(&self.dest_tags, t)) {
            let current = self.dst.resolve(ManifestRef::Tag(tag)).await?;
            if current.is_some_and(|d| &d.digest == graph.root().digest()) {
                in_place.insert(tag.clone());
            }
        }
        Ok(in_place)
    }

    /// Everything attached to the image's manifests and, breadth-first, to what is attached
    /// to them.
    async fn copy_attachments(&self, graph: &Graph) -> Result<()> {
        let mut seen: HashSet<Digest> = graph.nodes.iter().map(|n| n.digest().clone()).collect();
        let mut frontier: Vec<Digest> = graph.nodes.iter().map(|n| n.digest().clone()).collect();
        while !frontier.is_empty() {
            let found: Vec<Vec<Digest>> = stream::iter(frontier)
                .map(|d| async move { self.attachments(&d).await })
                .buffered(self.jobs)
                .try_collect()
                .await?;
            frontier = found
                .into_iter()
                .flatten()
                .filter(|d| seen.insert(d.clone()))
                .collect();
        }
        Ok(())
    }

    /// Points the tags not yet in place at the image; how many it wrote. Untagged, the image
    /// is still listed (a layout's index.json), or only its digest finds it.
    async fn write_tags(
        &self,
        graph: &Graph,
        tags: &[String],
        in_place: &HashSet<String>,
    ) -> Result<u64> {
        let root = &graph.root().manifest;
        let mut written = 0;
        for tag in tags.iter().filter(|t| !in_place.contains(*t)) {
            if !may_have(&self.dest_tags, tag) {
                // Not there when the mirror started: no need to ask before writing it.
                self.dst.put_manifest(root, Some(tag)).await?;
                written += 1;
            } else if put_tag(self.dst, root, tag).await? {
                written += 1;
            }
        }
        if tags.is_empty() {
            self.dst.list_untagged(root).await?;
        }
        Ok(written)
    }

    fn report(self, graph: &Graph, tags: Vec<String>, tags_written: u64) -> MirrorReport {
        let root = graph.root();
        MirrorReport {
            source: format!("{}@{}", self.src.repository(), root.digest()),
            destination: self.dst.repository().to_string(),
            digest: root.digest().to_string(),
            media_type: root.manifest.media_type.clone(),
            reference: format!("{}@{}", self.dst.repository(), root.digest()),
            manifests: graph.nodes[1..]
                .iter()
                .map(|n| MirroredManifest {
                    platform: n.platform.as_ref().map(|p| p.to_string()),
                    digest: n.digest().to_string(),
                })
                .collect(),
            tags,
            tags_written,
            artifacts: self.counts.into_inner().expect("counts"),
            stats: self.stats.into_inner().expect("stats"),
        }
    }
}

impl Report for MirrorReport {
    fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "mirrored {} to {}", self.source, self.reference);
        for m in &self.manifests {
            let _ = writeln!(
                s,
                "  {:<16} {}",
                m.platform.as_deref().unwrap_or("-"),
                m.digest
            );
        }
        let a = &self.artifacts;
        let _ = writeln!(
            s,
            "  attached: {} signature, {} attestation, {} sbom manifests, {} referrers copied; {} already there",
            a.signatures, a.attestations, a.sboms, a.referrers, a.unchanged
        );
        let st = &self.stats;
        let _ = writeln!(
            s,
            "  blobs: {} copied ({} bytes), {} mounted, {} already there",
            st.blobs_uploaded, st.bytes_uploaded, st.blobs_mounted, st.blobs_skipped
        );
        for t in &self.tags {
            let _ = writeln!(s, "  tagged {}:{t}", self.destination);
        }
        s
    }

    fn github_outputs(&self) -> Vec<(String, String)> {
        vec![
            ("digest".into(), self.digest.clone()),
            ("reference".into(), self.reference.clone()),
        ]
    }
}
