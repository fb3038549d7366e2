//! `wharf tree`: what is attached to an image and its manifests, in both storage schemes; for
//! a layout named without a tag or digest, every image it lists.

use super::graph::read_graph;
use super::referrers;
use crate::cosign::attestation::PREDICATE_TYPE_ANNOTATION;
use crate::oci::{Descriptor, Manifest};
use crate::report::Report;
use crate::store::{ListedImage, ManifestRef, Store};
use crate::text::one_line;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct Attachment {
    /// signature, attestation, sbom (tag scheme) or referrer.
    pub kind: String,
    /// The tag, or the referrer's digest.
    pub reference: String,
    /// Layer count, predicate types, or the referrer's artifact type.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct TreeManifest {
    pub digest: String,
    pub platform: Option<String>,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Serialize)]
pub struct TreeReport {
    pub repository: String,
    pub digest: String,
    /// The tags naming the image (listed for the images of a layout).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub manifests: Vec<TreeManifest>,
}

/// Every image a layout lists, each with its tree.
#[derive(Debug, Serialize)]
pub struct LayoutTreeReport {
    pub repository: String,
    pub images: Vec<TreeReport>,
}

pub async fn tree_all(store: &dyn Store, images: Vec<ListedImage>) -> Result<LayoutTreeReport> {
    let mut reports = Vec::new();
    for image in images {
        let mut report = tree(store, &image.descriptor).await?;
        report.tags = image.tags;
        reports.push(report);
    }
    Ok(LayoutTreeReport {
        repository: store.repository().to_string(),
        images: reports,
    })
}

pub async fn tree(store: &dyn Store, root: &Descriptor) -> Result<TreeReport> {
    let graph = read_graph(store, root, 8).await?;
    let tags: std::collections::HashSet<String> = store.list_tags().await?.into_iter().collect();
    let mut manifests = Vec::new();
    for node in &graph.nodes {
        let digest = node.digest();
        let mut attachments = Vec::new();
        for (suffix, kind) in [
            ("sig", "signature"),
            ("att", "attestation"),
            ("sbom", "sbom"),
        ] {
            let tag = format!("{}.{suffix}", digest.tag_prefix());
            if !tags.contains(&tag) {
                continue;
            }
            let detail = match store.get_manifest(ManifestRef::Tag(&tag)).await? {
                Some(raw) => match raw.parse()? {
                    Manifest::Image(m) => {
                        let types: Vec<&str> = m
                            .layers
                            .iter()
                            .filter_map(|l| l.annotation(PREDICATE_TYPE_ANNOTATION))
                            .collect();
                        if types.is_empty() {
                            format!("{} layer(s)", m.layers.len())
                        } else {
                            types.join(", ")
                        }
                    }
                    Manifest::Index(_) => "index".into(),
                },
                None => "gone".into(),
            };
            attachments.push(Attachment {
                kind: kind.into(),
                reference: tag,
                detail,
            });
        }
        let (found, _) = referrers::list(store, digest).await?;
        for r in found {
            let predicate = r
                .annotation("dev.sigstore.bundle.predicateType")
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            attachments.push(Attachment {
                kind: "referrer".into(),
                reference: r.digest.to_string(),
                detail: format!(
                    "{}{predicate}",
                    r.artifact_type.as_deref().unwrap_or(&r.media_type)
                ),
            });
        }
        manifests.push(TreeManifest {
            digest: digest.to_string(),
            platform: node.platform.as_ref().map(|p| p.to_string()),
            attachments,
        });
    }
    Ok(TreeReport {
        repository: store.repository().to_string(),
        digest: root.digest.to_string(),
        tags: Vec::new(),
        manifests,
    })
}

impl Report for TreeReport {
    fn text(&self) -> String {
        let mut s = String::new();
        // Tags, platforms and artifact types are what the store holds: a peer's text.
        let tags = if self.tags.is_empty() {
            String::new()
        } else {
            format!(" ({})", one_line(&self.tags.join(", ")))
        };
        let _ = writeln!(s, "{}@{}{tags}", self.repository, self.digest);
        for m in &self.manifests {
            let _ = writeln!(
                s,
                "└── {}{}",
                m.digest,
                m.platform
                    .as_deref()
                    .map(|p| format!(" ({})", one_line(p)))
                    .unwrap_or_default()
            );
            for a in &m.attachments {
                let _ = writeln!(
                    s,
                    "    ├── {:<11} {} {}",
                    a.kind,
                    one_line(&a.reference),
                    one_line(&a.detail)
                );
            }
        }
        s
    }
}

impl Report for LayoutTreeReport {
    fn text(&self) -> String {
        if self.images.is_empty() {
            return format!("{}: no images\n", self.repository);
        }
        self.images.iter().map(Report::text).collect()
    }
}
