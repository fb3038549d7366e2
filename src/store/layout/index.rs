//! A layout's `index.json`: what it lists, and how writes change the list.
//!
//! Every image pushed or mirrored into a layout is listed, so that tools reading the layout
//! (skopeo, oras, garbage collectors) find it without knowing its digest:
//! - untagged, as a descriptor without `org.opencontainers.image.ref.name` (the image-layout
//!   spec allows it; oras and skopeo write them). Writing the same image again adds nothing.
//! - tagged, one descriptor per tag (the annotation holds one name). Tagging an image listed
//!   untagged replaces that entry, as oras and skopeo do; a tag that moves to another image
//!   leaves the old image listed untagged unless something else lists it, as skopeo does, so
//!   it stays reachable. Only the root of an image is listed (skopeo does the same): its
//!   platform manifests are reachable through it, and readers that take "the one image" of a
//!   layout would otherwise find several.
//! - cosign's attachment tags (`sha256-<hex>.sig`, `.att`, `.sbom`) and the referrers
//!   fallback tag (`sha256-<hex>`) are entries like any tag, but what they point at is
//!   superseded when they move (a `.sig` manifest with one more signature), so the old one is
//!   dropped rather than kept untagged.
//!
//! The entries are edited as JSON values, so fields wharf does not know survive a rewrite.

use crate::oci::Descriptor;
use anyhow::Result;
use serde_json::Value;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Whether `tag` names something attached to an image rather than an image: cosign's
/// `sha256-<hex>.sig`/`.att`/`.sbom` or the referrers fallback index `sha256-<hex>`.
pub fn is_attachment_tag(tag: &str) -> bool {
    crate::cosign::sigmanifest::parse_digest_tag(tag).is_some()
}

/// The `manifests` of an `index.json`, parsed.
pub fn parse_entries(bytes: &[u8]) -> Result<Vec<Descriptor>> {
    #[derive(serde::Deserialize)]
    struct Index {
        manifests: Vec<Descriptor>,
    }
    let index: Index = serde_json::from_slice(bytes)?;
    Ok(index.manifests)
}

pub fn entry_ref_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(REF_NAME)?.as_str()
}

fn entry_digest(entry: &Value) -> Option<&str> {
    entry.get("digest")?.as_str()
}

/// The digest `tag` points at, if listed.
pub fn tagged_digest<'a>(entries: &'a [Value], tag: &str) -> Option<&'a str> {
    entries
        .iter()
        .find(|e| entry_ref_name(e) == Some(tag))
        .and_then(entry_digest)
}

/// Lists `entry` (a descriptor without a name) unless its digest is listed already. Returns
/// whether anything changed.
pub fn add_untagged(entries: &mut Vec<Value>, entry: Value) -> bool {
    let digest = entry_digest(&entry);
    if entries.iter().any(|e| entry_digest(e) == digest) {
        return false;
    }
    entries.push(entry);
    true
}

/// Points `tag` at the descriptor `entry` (which carries no name yet). Returns whether
/// anything changed.
pub fn set_tag(entries: &mut Vec<Value>, mut entry: Value, tag: &str) -> bool {
    let digest = entry_digest(&entry).map(str::to_string);
    let mut free_slot = None;
    if let Some(i) = entries.iter().position(|e| entry_ref_name(e) == Some(tag)) {
        if entry_digest(&entries[i]) == digest.as_deref() {
            return false;
        }
        let mut old = entries.remove(i);
        let old_digest = entry_digest(&old).map(str::to_string);
        let listed_elsewhere = entries
            .iter()
            .any(|e| entry_digest(e) == old_digest.as_deref());
        if !is_attachment_tag(tag) && !listed_elsewhere {
            remove_ref_name(&mut old);
            entries.insert(i, old);
        } else {
            free_slot = Some(i);
        }
    }
    entry["annotations"] = serde_json::json!({ REF_NAME: tag });
    let untagged = entries
        .iter()
        .position(|e| entry_digest(e) == digest.as_deref() && entry_ref_name(e).is_none())
        .filter(|_| !is_attachment_tag(tag));
    match untagged {
        // The image was listed untagged: that entry becomes the tagged one.
        Some(untagged) => entries[untagged] = entry,
        None => match free_slot {
            Some(i) => entries.insert(i, entry),
            None => entries.push(entry),
        },
    }
    true
}

fn remove_ref_name(entry: &mut Value) {
    if let Some(annotations) = entry.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.remove(REF_NAME);
        if annotations.is_empty() {
            entry.as_object_mut().map(|e| e.remove("annotations"));
        }
    }
}

/// An image a layout lists: its descriptor (annotations removed) and every tag naming it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedImage {
    pub descriptor: Descriptor,
    pub tags: Vec<String>,
}

/// The images `entries` list, in order of first appearance: attachment tags left out, one
/// image per digest with all its tags.
pub fn listed_images(entries: &[Descriptor]) -> Vec<ListedImage> {
    let mut images: Vec<ListedImage> = Vec::new();
    for entry in entries {
        let tag = entry.annotation(REF_NAME);
        if tag.is_some_and(is_attachment_tag) {
            continue;
        }
        let image = match images
            .iter_mut()
            .position(|i| i.descriptor.digest == entry.digest)
        {
            Some(i) => &mut images[i],
            None => {
                let mut descriptor = entry.clone();
                descriptor.annotations = None;
                images.push(ListedImage {
                    descriptor,
                    tags: Vec::new(),
                });
                images.last_mut().expect("just pushed")
            }
        };
        if let Some(tag) = tag {
            image.tags.push(tag.to_string());
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn entry(digest: &str) -> Value {
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": 1})
    }

    fn names(entries: &[Value]) -> Vec<(String, Option<String>)> {
        entries
            .iter()
            .map(|e| {
                (
                    entry_digest(e).unwrap()[7..8].to_string(),
                    entry_ref_name(e).map(str::to_string),
                )
            })
            .collect()
    }

    fn pairs(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|(d, t)| (d.to_string(), t.map(str::to_string)))
            .collect()
    }

    #[test]
    fn untagged_once_then_tagged_in_place() {
        let mut entries = Vec::new();
        assert!(add_untagged(&mut entries, entry(A)));
        assert!(!add_untagged(&mut entries, entry(A)), "no duplicate");
        assert!(add_untagged(&mut entries, entry(B)));
        assert!(set_tag(&mut entries, entry(A), "v1"));
        assert_eq!(names(&entries), pairs(&[("a", Some("v1")), ("b", None)]));
        assert!(!set_tag(&mut entries, entry(A), "v1"), "same tag again");
        assert!(set_tag(&mut entries, entry(A), "latest"));
        assert!(
            !add_untagged(&mut entries, entry(A)),
            "tagged counts as listed"
        );
        assert_eq!(
            names(&entries),
            pairs(&[("a", Some("v1")), ("b", None), ("a", Some("latest"))])
        );
    }

    #[test]
    fn a_moved_tag_leaves_its_old_image_listed() {
        let mut entries = Vec::new();
        set_tag(&mut entries, entry(A), "v1");
        set_tag(&mut entries, entry(B), "v1");
        assert_eq!(names(&entries), pairs(&[("a", None), ("b", Some("v1"))]));
        assert!(entries[0].get("annotations").is_none(), "{:?}", entries[0]);
        // ...unless another tag still lists it.
        let mut entries = Vec::new();
        set_tag(&mut entries, entry(A), "v1");
        set_tag(&mut entries, entry(A), "stable");
        set_tag(&mut entries, entry(B), "v1");
        assert_eq!(
            names(&entries),
            pairs(&[("b", Some("v1")), ("a", Some("stable"))])
        );
    }

    #[test]
    fn a_moved_attachment_tag_drops_what_it_superseded() {
        let sig = format!("sha256-{}.sig", &A[7..]);
        let mut entries = Vec::new();
        set_tag(&mut entries, entry(A), &sig);
        set_tag(&mut entries, entry(B), &sig);
        assert_eq!(names(&entries), pairs(&[("b", Some(sig.as_str()))]));
    }

    #[test]
    fn attachment_tags_are_recognised() {
        let hex = &A[7..];
        for tag in [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
            format!("sha256-{hex}.sbom"),
        ] {
            assert!(is_attachment_tag(&tag), "{tag}");
        }
        for tag in [
            "v1".to_string(),
            format!("sha256-{}", &hex[1..]),
            format!("sha256-{hex}."),
            format!("sha256-{hex}-x"),
            format!("sha256-{}", hex.to_uppercase()),
        ] {
            assert!(!is_attachment_tag(&tag), "{tag}");
        }
    }

    #[test]
    fn images_group_tags_and_skip_attachments() {
        let mut entries = Vec::new();
        set_tag(&mut entries, entry(A), "v1");
        add_untagged(&mut entries, entry(B));
        set_tag(&mut entries, entry(A), "latest");
        set_tag(&mut entries, entry(B), &format!("sha256-{}.sig", &B[7..]));
        let parsed: Vec<Descriptor> = entries
            .iter()
            .map(|e| serde_json::from_value(e.clone()).unwrap())
            .collect();
        let images = listed_images(&parsed);
        assert_eq!(images.len(), 2);
        assert_eq!(images[0].descriptor.digest.as_str(), A);
        assert_eq!(images[0].tags, ["v1", "latest"]);
        assert_eq!(images[0].descriptor.annotations, None);
        assert_eq!(images[1].descriptor.digest.as_str(), B);
        assert!(images[1].tags.is_empty());
    }
}
