//! The manifest graph under a root: an index, its child manifests (nested indexes too) and
//! the blobs they reference, read from a store with every manifest's bytes checked.

use crate::oci::{media, Descriptor, Digest, Manifest, Platform, RawManifest};
use crate::store::{ManifestRef, Store};
use anyhow::{anyhow, bail, Result};
use futures_util::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashSet};

/// The most manifests a graph may have, how deep indexes may nest, and how many bytes of
/// manifests are held at once: a registry answering an index of thousands of indexes must
/// not make a reader fetch and hold without end. Real images have tens of manifests, two
/// levels deep, a few KiB each.
pub const MAX_MANIFESTS: usize = 10_000;
pub const MAX_DEPTH: usize = 16;
pub const MAX_GRAPH_BYTES: u64 = 64 << 20;

/// Keeps a graph being read within [`MAX_MANIFESTS`], [`MAX_DEPTH`] and [`MAX_GRAPH_BYTES`].
struct GraphBudget<'a> {
    root: &'a Digest,
    repo: String,
    manifests: usize,
    bytes: u64,
}

impl<'a> GraphBudget<'a> {
    fn new(store: &dyn Store, root: &'a Digest) -> GraphBudget<'a> {
        GraphBudget {
            root,
            repo: store.repository().to_string(),
            manifests: 1,
            bytes: 0,
        }
    }

    /// `count` more manifests, `depth` levels down, are about to be read.
    fn admit(&mut self, count: usize, depth: usize) -> Result<()> {
        self.manifests += count;
        if self.manifests > MAX_MANIFESTS {
            bail!(
                "the manifests under {} in {} number more than {MAX_MANIFESTS}: wharf stops there",
                self.root,
                self.repo
            );
        }
        if count > 0 && depth > MAX_DEPTH {
            bail!(
                "the indexes under {} in {} nest more than {MAX_DEPTH} levels deep: wharf stops there",
                self.root,
                self.repo
            );
        }
        Ok(())
    }

    /// `manifest` was read.
    fn hold(&mut self, manifest: &RawManifest) -> Result<()> {
        self.bytes += manifest.bytes.len() as u64;
        if self.bytes > MAX_GRAPH_BYTES {
            bail!(
                "the manifests under {} in {} are larger than {} together: wharf stops there",
                self.root,
                self.repo,
                crate::files::size_text(MAX_GRAPH_BYTES)
            );
        }
        Ok(())
    }
}

/// One manifest of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    pub manifest: RawManifest,
    pub parsed: Manifest,
    /// From the parent index's descriptor, when it gave one.
    pub platform: Option<Platform>,
    /// Distance from the root (0 for the root).
    pub depth: usize,
}

impl Node {
    pub fn digest(&self) -> &Digest {
        &self.manifest.digest
    }
}

#[derive(Debug, Clone)]
pub struct Graph {
    /// Breadth-first from the root: parents before children.
    pub nodes: Vec<Node>,
}

impl Graph {
    pub fn root(&self) -> &Node {
        &self.nodes[0]
    }

    /// Distinct blobs (configs and layers) of every image manifest, in first-seen order, each
    /// with a description of where it is used (for error messages).
    pub fn blobs(&self) -> Vec<(Descriptor, String)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for node in &self.nodes {
            for blob in node.parsed.blobs() {
                if seen.insert(blob.digest.clone()) {
                    let owner = match &node.platform {
                        Some(p) => format!("manifest {} ({p})", node.digest()),
                        None => format!("manifest {}", node.digest()),
                    };
                    out.push((blob.clone(), owner));
                }
            }
        }
        out
    }

    /// The manifests grouped by depth, deepest first: the order to write them in so that a
    /// manifest's children always exist before it does.
    pub fn write_order(&self) -> Vec<Vec<&Node>> {
        let mut levels: BTreeMap<usize, Vec<&Node>> = BTreeMap::new();
        for node in &self.nodes {
            levels.entry(node.depth).or_default().push(node);
        }
        levels.into_values().rev().collect()
    }
}

/// The manifests under `root` (root first, then breadth-first), each with the platform its
/// parent index gives it, reading only the indexes: a child whose descriptor says it is an
/// image manifest has no children to find, and the descriptor's digest is all signing and
/// verifying need. Its presence is already guaranteed where it matters: registries refuse an
/// index naming manifests they do not hold, and layouts are written children first.
pub async fn manifest_digests(
    store: &dyn Store,
    root: &Descriptor,
    jobs: usize,
) -> Result<Vec<(Digest, Option<Platform>)>> {
    let repo = store.repository();
    let mut budget = GraphBudget::new(store, &root.digest);
    let mut out = vec![(root.digest.clone(), None)];
    let mut seen: HashSet<Digest> = HashSet::from([root.digest.clone()]);
    let mut to_read = Vec::new();
    if !media::is_image_manifest(&root.media_type) {
        to_read.push(root.clone());
    }
    let mut depth = 0;
    while !to_read.is_empty() {
        budget.admit(0, depth)?;
        depth += 1;
        let mut reads = stream::iter(std::mem::take(&mut to_read))
            .map(|desc| async move {
                store
                    .get_manifest(ManifestRef::Digest(&desc.digest))
                    .await?
                    .ok_or_else(|| anyhow!("manifest {} is missing from {repo}", desc.digest))
            })
            .buffered(jobs.max(1));
        let mut read = Vec::new();
        while let Some(raw) = reads.next().await {
            let raw = raw?;
            budget.hold(&raw)?;
            read.push(raw.parse()?);
        }
        for manifest in &read {
            for child in manifest.child_manifests() {
                if !seen.insert(child.digest.clone()) {
                    continue;
                }
                budget.admit(1, depth)?;
                out.push((child.digest.clone(), child.platform.clone()));
                if !media::is_image_manifest(&child.media_type) {
                    to_read.push(child.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Reads the graph under `root` from `store`, `jobs` manifests at a time.
pub async fn read_graph(store: &dyn Store, root: &Descriptor, jobs: usize) -> Result<Graph> {
    let root = fetch_node(store, root.clone(), 0).await?;
    read_graph_under(store, root, jobs).await
}

/// [`read_graph`] for a root already read (e.g. fetched by tag, which saves a request).
pub async fn read_graph_from(store: &dyn Store, root: RawManifest, jobs: usize) -> Result<Graph> {
    let parsed = root.parse()?;
    let root = Node {
        manifest: root,
        parsed,
        platform: None,
        depth: 0,
    };
    read_graph_under(store, root, jobs).await
}

async fn fetch_node(store: &dyn Store, desc: Descriptor, depth: usize) -> Result<Node> {
    let repo = store.repository();
    let manifest = store
        .get_manifest(ManifestRef::Digest(&desc.digest))
        .await?
        .ok_or_else(|| match &desc.platform {
            Some(p) => anyhow!("manifest {} ({p}) is missing from {repo}", desc.digest),
            None => anyhow!("manifest {} is missing from {repo}", desc.digest),
        })?;
    let parsed = manifest.parse()?;
    Ok(Node {
        manifest,
        parsed,
        platform: desc.platform,
        depth,
    })
}

async fn read_graph_under(store: &dyn Store, root: Node, jobs: usize) -> Result<Graph> {
    let root_digest = root.digest().clone();
    let mut budget = GraphBudget::new(store, &root_digest);
    budget.hold(&root.manifest)?;
    let mut seen: HashSet<Digest> = HashSet::from([root.digest().clone()]);
    let mut nodes = vec![root];
    let mut frontier = 0;
    while frontier < nodes.len() {
        let level_end = nodes.len();
        let mut children = Vec::new();
        for node in &nodes[frontier..level_end] {
            for child in node.parsed.child_manifests() {
                if seen.insert(child.digest.clone()) {
                    children.push((child.clone(), node.depth + 1));
                }
            }
        }
        budget.admit(children.len(), children.first().map_or(0, |(_, d)| *d))?;
        let mut fetched = stream::iter(children)
            .map(|(desc, depth)| fetch_node(store, desc, depth))
            .buffered(jobs.max(1));
        while let Some(node) = fetched.next().await {
            let node = node?;
            budget.hold(&node.manifest)?;
            nodes.push(node);
        }
        frontier = level_end;
    }
    Ok(Graph { nodes })
}
/// The manifests to sign or verify: the image itself and, when recursive, everything under it.
pub async fn targets(
    store: &dyn Store,
    digest: &Digest,
    recursive: bool,
    jobs: usize,
) -> Result<Vec<(Digest, Option<Platform>)>> {
    let root = store
        .resolve(ManifestRef::Digest(digest))
        .await?
        .ok_or_else(|| anyhow!("manifest {digest} not found in {}", store.repository()))?;
    if !recursive {
        return Ok(vec![(root.digest, None)]);
    }
    manifest_digests(store, &root, jobs).await
}
