//! `wharf push`: an OCI image layout (directory or archive) to a registry or another layout,
//! by digest.

use super::copy::{check_blobs_present, copy_graph, put_tag, CopyStats};
use super::graph::read_graph;
use crate::oci::{media, ImageRef, Repository};
use crate::report::Report;
use crate::store::{resolve_reference, Stores};
use crate::ui::Progress;
use anyhow::{bail, Result};
use serde::Serialize;
use std::fmt::Write;

pub struct PushRequest {
    pub source: ImageRef,
    pub dest: ImageRef,
    pub tags: Vec<String>,
    pub jobs: usize,
}

#[derive(Debug, Serialize)]
pub struct PushedManifest {
    pub platform: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

#[derive(Debug, Serialize)]
pub struct PushReport {
    /// The root manifest (usually the index).
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    /// `REPO@DIGEST`: what to sign, verify and deploy.
    pub reference: String,
    pub repository: String,
    /// Every manifest below the root, with the platform its index gives it.
    pub manifests: Vec<PushedManifest>,
    pub tags: Vec<String>,
    pub stats: CopyStats,
}

/// A layout named on the command line or in a config: `oci:`/`oci-archive:` as written; a
/// bare path is a directory, or an archive when it names a file.
pub fn layout_source(arg: &str) -> Result<ImageRef> {
    if crate::oci::reference::names_layout(arg) {
        return ImageRef::parse(arg);
    }
    let mut reference = ImageRef::parse(&format!("oci:{arg}"))?;
    if let Repository::Layout { dir } = &reference.repository {
        if dir.is_file() {
            reference.repository = Repository::Archive { file: dir.clone() };
        }
    }
    Ok(reference)
}

pub async fn push(
    stores: &Stores,
    request: &PushRequest,
    progress: &Progress,
) -> Result<PushReport> {
    if !request.source.repository.is_layout() {
        bail!(
            "push reads an OCI image layout (a directory, oci:DIR or oci-archive:FILE), not {}; \
             to copy between registries use `wharf mirror`",
            request.source
        );
    }
    let source = stores.open(&request.source).await?;
    let root = resolve_reference(source.as_ref(), &request.source).await?;
    if !media::is_manifest(&root.media_type) {
        bail!(
            "{} points at {} of type {:?}, which is not an image manifest or index",
            request.source,
            root.digest,
            root.media_type
        );
    }
    let graph = read_graph(source.as_ref(), &root, request.jobs).await?;
    check_blobs_present(source.as_ref(), &graph, request.jobs).await?;

    let dest = stores.open_for_write(&request.dest).await?;
    let stats = copy_graph(
        source.as_ref(),
        dest.as_ref(),
        &graph,
        request.jobs,
        progress,
    )
    .await?;

    // Tags last: by now the whole image is in place.
    let mut tags: Vec<String> = request
        .dest
        .tag
        .iter()
        .chain(&request.tags)
        .cloned()
        .collect();
    tags.dedup();
    for tag in &tags {
        put_tag(dest.as_ref(), &graph.root().manifest, tag).await?;
    }
    if tags.is_empty() {
        // Untagged, it is still listed (a layout's index.json), or only its digest finds it.
        dest.list_untagged(&graph.root().manifest).await?;
    }
    dest.commit().await?;

    let root_node = graph.root();
    Ok(PushReport {
        digest: root_node.digest().to_string(),
        media_type: root_node.manifest.media_type.clone(),
        size: root_node.manifest.bytes.len() as u64,
        reference: format!("{}@{}", dest.repository(), root_node.digest()),
        repository: dest.repository().to_string(),
        manifests: graph.nodes[1..]
            .iter()
            .map(|n| PushedManifest {
                platform: n.platform.as_ref().map(|p| p.to_string()),
                digest: n.digest().to_string(),
                size: n.manifest.bytes.len() as u64,
                media_type: n.manifest.media_type.clone(),
            })
            .collect(),
        tags,
        stats,
    })
}

impl Report for PushReport {
    fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "pushed {}", self.reference);
        for m in &self.manifests {
            let _ = writeln!(
                s,
                "  {:<16} {}",
                m.platform.as_deref().unwrap_or("-"),
                m.digest
            );
        }
        let st = &self.stats;
        let _ = writeln!(
            s,
            "  blobs: {} uploaded ({} bytes), {} mounted, {} already there; manifests: {} written, {} already there",
            st.blobs_uploaded, st.bytes_uploaded, st.blobs_mounted, st.blobs_skipped, st.manifests_written, st.manifests_skipped
        );
        for t in &self.tags {
            let _ = writeln!(s, "  tagged {}:{t}", self.repository);
        }
        s
    }

    fn github_outputs(&self) -> Vec<(String, String)> {
        let mut outputs = vec![
            ("digest".to_string(), self.digest.clone()),
            ("reference".to_string(), self.reference.clone()),
        ];
        for m in &self.manifests {
            if let Some(p) = &m.platform {
                outputs.push((format!("digest-{}", p.replace('/', "-")), m.digest.clone()));
            }
        }
        outputs
    }

    fn github_summary(&self) -> Option<String> {
        let mut s = format!(
            "### wharf push\n\nPushed `{}`\n\n| platform | digest |\n|---|---|\n",
            self.reference
        );
        for m in &self.manifests {
            let _ = writeln!(
                s,
                "| {} | `{}` |",
                m.platform.as_deref().unwrap_or("-"),
                m.digest
            );
        }
        for t in &self.tags {
            let _ = writeln!(s, "\nTagged `{}:{t}`", self.repository);
        }
        Some(s)
    }
}
