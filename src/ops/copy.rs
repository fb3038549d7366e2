//! Copying a manifest graph between stores, byte for byte: blobs first, then manifests from
//! the leaves up, so nothing at the destination ever points at something missing.
//!
//! Frugal by construction: a manifest the destination already has is taken as complete (the
//! registry checked its references when it was written), so re-copying an unchanged image costs
//! one HEAD per root; blobs are checked with HEAD before moving any byte.

use super::graph::{Graph, Node};
use crate::oci::{media, Descriptor, Digest};
use crate::store::{BlobTransfer, ManifestRef, Store, StoreBlob};
use crate::ui::Progress;
use anyhow::{anyhow, Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Serialize, Clone)]
pub struct CopyStats {
    pub blobs_uploaded: u64,
    pub blobs_mounted: u64,
    pub blobs_skipped: u64,
    pub bytes_uploaded: u64,
    pub bytes_mounted: u64,
    pub bytes_skipped: u64,
    pub manifests_written: u64,
    pub manifests_skipped: u64,
}

impl CopyStats {
    pub fn add(&mut self, other: &CopyStats) {
        self.blobs_uploaded += other.blobs_uploaded;
        self.blobs_mounted += other.blobs_mounted;
        self.blobs_skipped += other.blobs_skipped;
        self.bytes_uploaded += other.bytes_uploaded;
        self.bytes_mounted += other.bytes_mounted;
        self.bytes_skipped += other.bytes_skipped;
        self.manifests_written += other.manifests_written;
        self.manifests_skipped += other.manifests_skipped;
    }
}

#[derive(Default)]
struct Counters {
    blobs_uploaded: AtomicU64,
    blobs_mounted: AtomicU64,
    blobs_skipped: AtomicU64,
    bytes_uploaded: AtomicU64,
    bytes_mounted: AtomicU64,
    bytes_skipped: AtomicU64,
}

/// Checks, before anything is written anywhere, that every blob the graph needs is in `source`
/// (a local layout answers this cheaply; a missing layer is reported by name, not mid-upload).
pub async fn check_blobs_present(source: &dyn Store, graph: &Graph, jobs: usize) -> Result<()> {
    let repo = source.repository();
    stream::iter(graph.blobs())
        .map(|(blob, owner)| async move {
            if media::is_foreign_layer(&blob.media_type) || source.blob_exists(&blob).await? {
                Ok(())
            } else {
                Err(anyhow!(
                    "blob {} ({}, used by {owner}) is missing from {repo} or has the wrong size",
                    blob.digest,
                    blob.media_type
                ))
            }
        })
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Blobs sent to one destination by the copies of one run (a mirror copies the image and
/// every attachment side by side, and bundle referrers of different subjects share their
/// config): each is sent once, and a copy that needs a blob another copy is sending waits
/// until it has arrived. A blob counts as present only once it is: a manifest written while its
/// blob is still on its way is refused (MANIFEST_BLOB_UNKNOWN), and so may be one written
/// while the blob is sent again, since distribution rewrites the blob's repository link in
/// place (truncate, then write) on every upload.
#[derive(Default)]
pub struct SentBlobs {
    blobs: Mutex<HashMap<Digest, Arc<tokio::sync::OnceCell<()>>>>,
}

impl SentBlobs {
    /// Set once `digest` has arrived; whoever initializes it sends it. When that copy fails
    /// (or is dropped), the next one waiting sends it instead.
    fn arrival(&self, digest: &Digest) -> Arc<tokio::sync::OnceCell<()>> {
        self.blobs
            .lock()
            .expect("sent blobs")
            .entry(digest.clone())
            .or_default()
            .clone()
    }
}

/// Copies `graph` (read from `source`) into `dest`. Tags nothing.
pub async fn copy_graph(
    source: &dyn Store,
    dest: &dyn Store,
    graph: &Graph,
    jobs: usize,
    progress: &Progress,
) -> Result<CopyStats> {
    copy_graph_sharing(source, dest, graph, jobs, progress, &SentBlobs::default()).await
}

/// [`copy_graph`] beside other copies to the same destination that may need the same blobs
/// (see [`SentBlobs`]).
pub async fn copy_graph_sharing(
    source: &dyn Store,
    dest: &dyn Store,
    graph: &Graph,
    jobs: usize,
    progress: &Progress,
    sent: &SentBlobs,
) -> Result<CopyStats> {
    let plan = Plan {
        write_root: true,
        root_absent: false,
        sent,
    };
    copy(source, dest, graph, jobs, progress, plan).await
}

/// [`copy_graph_sharing`] for a root that its caller writes under a tag (a `.sig`/`.att`
/// manifest), after every such copy has finished: everything except the root itself, which
/// the tag write stores anyway.
///
/// `root_absent`: the caller knows the destination lacks the root (its tag is not there, and
/// wharf only ever writes these roots under their tags), so it is not asked about.
pub async fn copy_graph_for_tag(
    source: &dyn Store,
    dest: &dyn Store,
    graph: &Graph,
    jobs: usize,
    progress: &Progress,
    root_absent: bool,
    sent: &SentBlobs,
) -> Result<CopyStats> {
    let plan = Plan {
        write_root: false,
        root_absent,
        sent,
    };
    copy(source, dest, graph, jobs, progress, plan).await
}

struct Plan<'a> {
    write_root: bool,
    root_absent: bool,
    sent: &'a SentBlobs,
}

async fn copy(
    source: &dyn Store,
    dest: &dyn Store,
    graph: &Graph,
    jobs: usize,
    progress: &Progress,
    plan: Plan<'_>,
) -> Result<CopyStats> {
    let jobs = jobs.max(1);
    let missing = missing_manifests(dest, graph, jobs, plan.root_absent).await?;
    let mut stats = CopyStats {
        manifests_skipped: (graph.nodes.len() - missing.len()) as u64,
        ..Default::default()
    };
    if missing.is_empty() {
        return Ok(stats);
    }

    // Blobs of the manifests the destination lacks.
    let mut seen = HashSet::new();
    let blobs: Vec<(Descriptor, String)> = graph
        .blobs()
        .into_iter()
        .filter(|(blob, _)| {
            graph
                .nodes
                .iter()
                .filter(|n| missing.contains(n.digest()))
                .any(|n| n.parsed.blobs().iter().any(|b| b.digest == blob.digest))
        })
        .filter(|(blob, _)| seen.insert(blob.digest.clone()))
        .collect();
    let total: u64 = blobs.iter().map(|(b, _)| b.size).sum();
    let overall = progress.bytes("blobs", total);
    let counters = Counters::default();
    stream::iter(blobs)
        .map(|(blob, owner)| {
            let (overall, counters) = (&overall, &counters);
            async move {
                let sending = AtomicBool::new(false);
                plan.sent
                    .arrival(&blob.digest)
                    .get_or_try_init(|| {
                        sending.store(true, Ordering::Relaxed);
                        copy_blob(source, dest, &blob, progress, overall, counters)
                    })
                    .await
                    .with_context(|| format!("copying blob {} of {owner}", blob.digest))?;
                if !sending.load(Ordering::Relaxed) {
                    // Sent by another copy of this run (and counted there).
                    overall.inc(blob.size);
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(jobs)
        .try_collect::<Vec<()>>()
        .await?;
    overall.finish_and_clear();

    // Manifests, deepest first; siblings concurrently.
    for level in graph.write_order() {
        let level: Vec<&Node> = level
            .into_iter()
            .filter(|n| missing.contains(n.digest()))
            .filter(|n| plan.write_root || n.depth > 0)
            .collect();
        stats.manifests_written += level.len() as u64;
        stream::iter(level)
            .map(|node| async move { dest.put_manifest(&node.manifest, None).await })
            .buffer_unordered(jobs)
            .try_collect::<Vec<()>>()
            .await?;
    }

    stats.blobs_uploaded = counters.blobs_uploaded.into_inner();
    stats.blobs_mounted = counters.blobs_mounted.into_inner();
    stats.blobs_skipped = counters.blobs_skipped.into_inner();
    stats.bytes_uploaded = counters.bytes_uploaded.into_inner();
    stats.bytes_mounted = counters.bytes_mounted.into_inner();
    stats.bytes_skipped = counters.bytes_skipped.into_inner();
    Ok(stats)
}

/// Blobs up to this size go to a registry without a HEAD first.
const SEND_WITHOUT_ASKING: u64 = 64 * 1024;

async fn copy_blob(
    source: &dyn Store,
    dest: &dyn Store,
    blob: &Descriptor,
    progress: &Progress,
    overall: &indicatif::ProgressBar,
    counters: &Counters,
) -> Result<()> {
    // A small blob (a config, a signature payload) costs as much to ask about as to send:
    // registries get it outright. Large ones are asked about first, so nothing big is sent
    // twice (a rerun after an interruption, or layers shared with another image).
    let ask_first = blob.size > SEND_WITHOUT_ASKING || dest.repository().is_layout();
    if ask_first && dest.blob_exists(blob).await? {
        counters.blobs_skipped.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes_skipped
            .fetch_add(blob.size, Ordering::Relaxed);
        overall.inc(blob.size);
        return Ok(());
    }
    if media::is_foreign_layer(&blob.media_type) && !source.blob_exists(blob).await? {
        // Non-distributable layers are fetched by clients from their URLs.
        return Ok(());
    }
    let label = blob.digest.hex()[..12].to_string();
    let (bar, on_bytes) = progress.blob_counter(overall, &label, blob.size);
    let transfer = dest
        .put_blob(
            blob,
            &StoreBlob {
                store: source,
                blob,
            },
            on_bytes,
        )
        .await?;
    bar.finish_and_clear();
    match transfer {
        BlobTransfer::Uploaded => {
            counters.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes_uploaded
                .fetch_add(blob.size, Ordering::Relaxed);
        }
        BlobTransfer::Mounted => {
            counters.blobs_mounted.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes_mounted
                .fetch_add(blob.size, Ordering::Relaxed);
            overall.inc(blob.size);
        }
    }
    Ok(())
}

/// The manifests of `graph` that `dest` lacks. A present manifest's subtree is taken as
/// present: registries refuse manifests whose references are missing, and wharf writes
/// leaves first.
async fn missing_manifests(
    dest: &dyn Store,
    graph: &Graph,
    jobs: usize,
    root_absent: bool,
) -> Result<HashSet<Digest>> {
    let mut missing = HashSet::new();
    let mut frontier: Vec<&Node> = vec![graph.root()];
    while !frontier.is_empty() {
        let present: Vec<(&Node, bool)> = stream::iter(frontier)
            .map(|node| async move {
                if root_absent && node.depth == 0 {
                    return Ok((node, false));
                }
                let found = dest.resolve(ManifestRef::Digest(node.digest())).await?;
                Ok::<_, anyhow::Error>((node, found.is_some()))
            })
            .buffered(jobs)
            .try_collect()
            .await?;
        let mut next = Vec::new();
        for (node, is_present) in present {
            if is_present {
                continue;
            }
            missing.insert(node.digest().clone());
            for child in node.parsed.child_manifests() {
                if let Some(child_node) = graph.nodes.iter().find(|n| n.digest() == &child.digest) {
                    if !missing.contains(child_node.digest()) {
                        next.push(child_node);
                    }
                }
            }
        }
        next.dedup_by(|a, b| a.digest() == b.digest());
        frontier = next;
    }
    Ok(missing)
}

/// Points `tag` at `manifest`, unless it already does (a rerun then writes nothing).
pub async fn put_tag(
    dest: &dyn Store,
    manifest: &crate::oci::RawManifest,
    tag: &str,
) -> Result<bool> {
    if dest
        .resolve(ManifestRef::Tag(tag))
        .await?
        .is_some_and(|d| d.digest == manifest.digest)
    {
        return Ok(false);
    }
    dest.put_manifest(manifest, Some(tag)).await?;
    Ok(true)
}
