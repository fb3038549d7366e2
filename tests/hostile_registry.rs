//! Hostile registries: peers that answer 1 GiB documents, endless or looping pages, links,
//! upload locations and token realms on other hosts, control characters in their words; and
//! writes that arrive late or are answered as failed after they landed.
//!
//! Every refusal is one error line naming what and where, a non-zero exit, an end in
//! seconds, peak memory under 256 MiB ([`assert_refused`]), and no credential on a host it
//! does not belong to.

mod common;

use common::fake_registry::{
    basic_challenge, bearer_challenge, registry_error, tiny_image_answer, tiny_manifest,
    tiny_manifest_response, FakeRequest, FakeResponse, FakeServer, GIB,
};
use common::hostile::{assert_refused, run_bounded, BoundedRun};
use common::keys::openssl_key;
use common::proxy::{Action, Fault, Hook, Proxy};
use common::*;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const USER: &str = "releaser";
const PASSWORD: &str = "s3cret-registry-password";

/// `wharf` with the fake registry allowed over plain HTTP.
fn wharf_at(server: &FakeServer) -> Command {
    let mut cmd = wharf();
    cmd.args(["--insecure-registry", server.addr()]);
    cmd
}

/// Runs `cmd` bounded and checks it was refused in seconds with one line naming `needles`.
fn refused(cmd: &mut Command, needles: &[&str]) -> (BoundedRun, String) {
    let run = run_bounded(cmd, LIMIT);
    let line = assert_refused(&run, needles);
    assert!(
        run.elapsed < Duration::from_secs(20),
        "took {:?}: {line}",
        run.elapsed
    );
    (run, line)
}

/// A registry serving one tiny image as `app:v1`, with `answer` deciding first: requests it
/// answers `None` for get the plain registry's answer.
fn registry(
    answer: impl Fn(&FakeRequest) -> Option<FakeResponse> + Send + Sync + 'static,
) -> FakeServer {
    FakeServer::start(move |req| answer(req).unwrap_or_else(|| tiny_image_answer(req)))
}

/// `HOST:PORT/app:v1` of `reg`.
fn app_v1(reg: &FakeServer) -> String {
    format!("{}/app:v1", reg.addr())
}

/// `wharf tree` of `app:v1` at `reg`, refused as [`refused`] checks.
fn tree_refused(reg: &FakeServer, needles: &[&str]) -> (BoundedRun, String) {
    let image = app_v1(reg);
    refused(wharf_at(reg).args(["tree", &image]), needles)
}

fn is_get(req: &FakeRequest, path_part: &str) -> bool {
    req.method == "GET" && req.path.contains(path_part)
}

// ---------------------------------------------------------------------------------------
// Bounded reads
// ---------------------------------------------------------------------------------------

#[test]
fn a_one_gib_manifest_is_refused_at_the_limit_chunked_or_declared() {
    for chunked in [true, false] {
        let reg = registry(move |req| {
            (req.path.contains("/manifests/v1")).then(|| {
                if req.method == "HEAD" {
                    // No digest header: the client has to read the manifest.
                    FakeResponse::status(200)
                } else {
                    FakeResponse::huge(
                        200,
                        "application/vnd.oci.image.manifest.v1+json",
                        GIB,
                        chunked,
                    )
                }
            })
        });
        tree_refused(&reg, &["manifest", &format!("{}/app", reg.addr()), "4 MiB"]);
    }
}

#[test]
fn a_one_gib_tag_list_is_refused_at_the_limit() {
    let reg = registry(|req| {
        is_get(req, "/tags/list").then(|| FakeResponse::huge(200, "application/json", GIB, true))
    });
    tree_refused(&reg, &["tag list", &format!("{}/app", reg.addr()), "4 MiB"]);
}

#[test]
fn endless_tag_pages_stop_at_the_page_limit() {
    let pages = Arc::new(AtomicU64::new(0));
    let served = pages.clone();
    let reg = registry(move |req| {
        is_get(req, "/tags/list").then(|| {
            let n = served.fetch_add(1, Ordering::SeqCst);
            FakeResponse::json(
                200,
                &serde_json::json!({"name": "app", "tags": [format!("t{n}")]}),
            )
            .with_header(
                "Link",
                &format!(r#"</v2/app/tags/list?last=t{n}&n=1>; rel="next""#),
            )
        })
    });
    tree_refused(
        &reg,
        &["tag list", &format!("{}/app", reg.addr()), "1000 pages"],
    );
    assert!(pages.load(Ordering::SeqCst) <= 1000);
}

#[test]
fn a_tag_list_cursor_that_comes_back_is_a_loop() {
    // The same page again, and the same cursor behind a changing URL.
    for link in [
        |_: u64| r#"</v2/app/tags/list?last=a&n=1>; rel="next""#.to_string(),
        |n: u64| format!(r#"</v2/app/tags/list?last=a&n=1&junk={n}>; rel="next""#),
    ] {
        let pages = Arc::new(AtomicU64::new(0));
        let served = pages.clone();
        let reg = registry(move |req| {
            is_get(req, "/tags/list").then(|| {
                let n = served.fetch_add(1, Ordering::SeqCst);
                FakeResponse::json(200, &serde_json::json!({"name": "app", "tags": ["a"]}))
                    .with_header("Link", &link(n))
            })
        });
        tree_refused(
            &reg,
            &[
                "tag list",
                &format!("{}/app", reg.addr()),
                "repeats an earlier one",
            ],
        );
        assert!(pages.load(Ordering::SeqCst) <= 3);
    }
}

#[test]
fn a_one_gib_referrers_answer_is_refused_at_the_limit() {
    let reg = registry(|req| {
        is_get(req, "/referrers/")
            .then(|| FakeResponse::huge(200, "application/vnd.oci.image.index.v1+json", GIB, true))
    });
    tree_refused(
        &reg,
        &["referrers", &format!("{}/app", reg.addr()), "4 MiB"],
    );
}

#[test]
fn a_one_gib_fallback_index_is_refused_at_the_limit() {
    let fallback_tag = format!("sha256-{}", &tiny_manifest().1["sha256:".len()..]);
    let reg = registry(move |req| {
        (req.path.ends_with(&format!("/manifests/{fallback_tag}")) && req.method == "GET")
            .then(|| FakeResponse::huge(200, "application/vnd.oci.image.index.v1+json", GIB, false))
    });
    tree_refused(
        &reg,
        &[
            "manifest tag sha256-",
            &format!("{}/app", reg.addr()),
            "4 MiB",
        ],
    );
}

#[test]
fn a_one_gib_token_answer_is_refused_at_the_limit() {
    let realm = Arc::new(std::sync::OnceLock::<String>::new());
    let realm_for_handler = realm.clone();
    let reg = FakeServer::start(move |req| {
        if req.path.starts_with("/token") {
            return FakeResponse::huge(200, "application/json", GIB, true);
        }
        bearer_challenge(realm_for_handler.get().unwrap())
    });
    realm.set(reg.url("/token")).unwrap();
    tree_refused(&reg, &["token answer", reg.addr(), "256 KiB"]);
}

#[test]
fn a_one_gib_error_answer_is_cut_short() {
    let reg = registry(|req| {
        (req.path.contains("/manifests/v1")).then(|| {
            if req.method == "HEAD" {
                FakeResponse::status(200)
            } else {
                FakeResponse::huge(403, "text/html", GIB, true)
            }
        })
    });
    let (_, line) = tree_refused(&reg, &[reg.addr(), "403 Forbidden"]);
    assert!(line.len() < 1000, "{} bytes: {line}", line.len());
}

/// A registry serving `root` as `app:v1` and every manifest of `others` by its digest.
fn serving_manifests(root: Vec<u8>, others: Vec<Vec<u8>>) -> FakeServer {
    let mut by_digest: std::collections::HashMap<String, Vec<u8>> =
        others.into_iter().map(|m| (digest_of(&m), m)).collect();
    by_digest.insert(digest_of(&root), root.clone());
    registry(move |req| {
        let wanted = req.path.rsplit('/').next().unwrap_or_default();
        let bytes = if wanted == "v1" {
            Some(root.clone())
        } else {
            by_digest.get(wanted).cloned()
        }?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["mediaType"]
            .as_str()
            .unwrap()
            .to_string();
        Some(
            FakeResponse::bytes(200, &media_type, bytes.clone())
                .with_header("Docker-Content-Digest", &digest_of(&bytes)),
        )
    })
}

/// An index over `children` (descriptors of the given media type).
fn index_of(children: &[(String, &str, usize)]) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .map(|(digest, media_type, size)| {
            serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}

#[test]
fn an_index_of_more_manifests_than_any_image_has_is_refused_before_reading_them() {
    let children: Vec<(String, &str, usize)> = (0..10_001u32)
        .map(|i| (digest_of(&i.to_be_bytes()), media_type::OCI_MANIFEST, 300))
        .collect();
    let reg = serving_manifests(index_of(&children), Vec::new());
    tree_refused(&reg, &[&format!("{}/app", reg.addr()), "more than 10000"]);
    let reads = reg.requests().iter().filter(|r| r.method == "GET").count();
    assert!(reads < 10, "{reads} manifests read");
}

#[test]
fn indexes_nested_without_end_are_refused_at_the_depth_limit() {
    let mut manifests = Vec::new();
    let (tiny, tiny_digest) = tiny_manifest();
    let mut child = (tiny_digest, media_type::OCI_MANIFEST, tiny.len());
    manifests.push(tiny);
    for _ in 0..40 {
        let index = index_of(&[child]);
        child = (digest_of(&index), media_type::OCI_INDEX, index.len());
        manifests.push(index);
    }
    let root = manifests.pop().unwrap();
    let reg = serving_manifests(root, manifests);
    tree_refused(
        &reg,
        &[&format!("{}/app", reg.addr()), "more than 16 levels"],
    );
}

#[test]
fn manifests_too_large_together_are_refused_at_the_graph_limit() {
    // Each under the 4 MiB limit for one manifest; 20 of them are 70 MiB.
    let children: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            let mut m: serde_json::Value = serde_json::from_slice(&tiny_manifest().0).unwrap();
            m["annotations"] =
                serde_json::json!({"padding": format!("{i}{}", " ".repeat(3_500_000))});
            serde_json::to_vec(&m).unwrap()
        })
        .collect();
    let descriptors: Vec<(String, &str, usize)> = children
        .iter()
        .map(|c| (digest_of(c), media_type::OCI_MANIFEST, c.len()))
        .collect();
    let reg = serving_manifests(index_of(&descriptors), children);
    tree_refused(
        &reg,
        &[
            &format!("{}/app", reg.addr()),
            "larger than 64 MiB together",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Credentials go only where they belong
// ---------------------------------------------------------------------------------------

/// A registry asking for `USER`:`PASSWORD` (Basic) before anything, then answering as
/// [`registry`] does.
fn private_registry(
    answer: impl Fn(&FakeRequest) -> Option<FakeResponse> + Send + Sync + 'static,
) -> FakeServer {
    let expected = basic_auth(USER, PASSWORD);
    registry(move |req| {
        if req.authorization() != Some(expected.as_str()) {
            return Some(basic_challenge());
        }
        answer(req)
    })
}

/// `wharf` with the credentials for `reg` in flags and environment.
fn wharf_logged_in(reg: &FakeServer) -> Command {
    let mut cmd = wharf_at(reg);
    cmd.args(["--registry-username", USER])
        .env("WHARF_REGISTRY_PASSWORD", PASSWORD);
    cmd
}

fn assert_no_credentials(host: &FakeServer) {
    let leaked = host.authorized_requests();
    assert!(
        leaked.is_empty(),
        "{} got credentials it does not own: {:#?}",
        host.addr(),
        leaked
    );
}

#[test]
fn a_tag_list_continued_on_another_host_is_not_followed_with_credentials() {
    let other = FakeServer::start(|_| {
        FakeResponse::json(200, &serde_json::json!({"name": "app", "tags": ["x"]}))
    });
    let next = other.url("/v2/app/tags/list?last=v1");
    let reg = private_registry(move |req| {
        is_get(req, "/tags/list").then(|| {
            FakeResponse::json(200, &serde_json::json!({"name": "app", "tags": ["v1"]}))
                .with_header("Link", &format!(r#"<{next}>; rel="next""#))
        })
    });
    let image = app_v1(&reg);
    refused(
        wharf_logged_in(&reg).args(["tree", &image]),
        &[
            "tag list",
            &format!("{}/app", reg.addr()),
            other.addr(),
            "own host",
        ],
    );
    assert_no_credentials(&other);
    assert!(
        !reg.authorized_requests().is_empty(),
        "the registry itself got none"
    );
}

#[test]
fn an_upload_location_on_another_host_gets_the_bytes_but_no_credentials() {
    let storage = FakeServer::start(|req| {
        if req.method == "PUT" {
            FakeResponse::status(201)
        } else {
            FakeResponse::status(404)
        }
    });
    let uploads = storage.url("/upload/session");
    let reg = private_registry(move |req| {
        let path = req.path.split('?').next().unwrap_or_default();
        match req.method.as_str() {
            "POST" if path.ends_with("/blobs/uploads/") => {
                Some(FakeResponse::status(202).with_header("Location", &format!("{uploads}?s=1")))
            }
            "HEAD" if path.contains("/blobs/") || path.contains("/manifests/") => {
                Some(FakeResponse::status(404))
            }
            "PUT" if path.contains("/manifests/") => Some(FakeResponse::status(201)),
            _ => None,
        }
    });
    let dir = tempdir();
    let layout = make_layout(&dir.path().join("layout"), &LayoutSpec::default());
    run_ok(
        wharf_logged_in(&reg)
            .arg("push")
            .arg(&layout.dir)
            .arg(format!("{}/app", reg.addr())),
    );
    let stored: Vec<FakeRequest> = storage
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(stored.len(), layout.blob_digests.len(), "{stored:#?}");
    assert_no_credentials(&storage);
}

#[test]
fn basic_credentials_do_not_go_to_a_plain_http_realm_on_another_host() {
    let tokens = FakeServer::start(|_| FakeResponse::json(200, &serde_json::json!({"token": "t"})));
    let realm = tokens.url("/token");
    let reg = FakeServer::start(move |req| {
        if req.authorization() == Some("Bearer t") {
            return tiny_manifest_response();
        }
        bearer_challenge(&realm)
    });
    let image = app_v1(&reg);
    let insecure_flag = format!("--insecure-registry {}", tokens.addr());
    refused(
        wharf_logged_in(&reg).args(["tree", &image]),
        &[reg.addr(), tokens.addr(), "plain HTTP", &insecure_flag],
    );
    assert!(tokens.requests().is_empty(), "{:#?}", tokens.requests());
}

#[test]
fn a_plain_http_realm_on_a_host_marked_insecure_gets_the_credentials() {
    let tokens = FakeServer::start(|req| {
        if req.authorization() == Some(basic_auth(USER, PASSWORD).as_str()) {
            FakeResponse::json(200, &serde_json::json!({"token": "t"}))
        } else {
            FakeResponse::status(401)
        }
    });
    let realm = tokens.url("/token");
    let reg = registry(move |req| {
        (req.authorization() != Some("Bearer t")).then(|| bearer_challenge(&realm))
    });
    let image = app_v1(&reg);
    run_ok(
        wharf_logged_in(&reg)
            .args(["--insecure-registry", tokens.addr()])
            .args(["tree", &image]),
    );
    assert!(!tokens.authorized_requests().is_empty());
}

#[test]
fn mirror_does_not_hand_the_destination_password_to_the_source() {
    let source = FakeServer::start(|_| basic_challenge());
    let dest = Registry::start_with_basic_auth(USER, PASSWORD);
    let out = run_fail(
        wharf()
            .args(["--insecure-registry", source.addr()])
            .args(["--insecure-registry", dest.addr()])
            .args([
                "mirror",
                &format!("{}/app:v1", source.addr()),
                &dest.repo("app"),
            ])
            .args(["--registry-username", USER])
            .env("WHARF_REGISTRY_PASSWORD", PASSWORD),
    );
    let line = error_line(&out);
    assert!(
        line.contains(source.addr()) && line.contains("requires authentication"),
        "{line}"
    );
    assert_no_credentials(&source);
}

// ---------------------------------------------------------------------------------------
// A peer's words cannot start a line of their own
// ---------------------------------------------------------------------------------------

const INJECTION: &str = "denied\n::add-mask::s3cret\r\n::stop-commands::t0ken\n::error::forged";

/// No line of the run's output starts a workflow command but wharf's own `::error::`.
fn assert_no_injected_commands(run: &BoundedRun) {
    for line in run.stdout().lines().chain(run.stderr().lines()) {
        let line = line.trim_start();
        let ours = line.starts_with("::error::") && !line.starts_with("::error::forged");
        assert!(
            !line.starts_with("::") || ours,
            "a peer started a line: {line:?}"
        );
    }
}

/// `wharf tree` of `app:v1` at `reg`, as in a GitHub Actions step.
fn tree_in_github_actions(reg: &FakeServer) -> BoundedRun {
    let image = app_v1(reg);
    run_bounded(
        wharf_at(reg)
            .args(["tree", &image])
            .env("GITHUB_ACTIONS", "true"),
        LIMIT,
    )
}

#[test]
fn registry_error_text_cannot_inject_workflow_commands() {
    for json in [true, false] {
        let reg = registry(move |req| {
            req.path.contains("/manifests/v1").then(|| {
                if req.method == "HEAD" {
                    FakeResponse::status(200)
                } else if json {
                    registry_error(403, "DENIED", INJECTION)
                } else {
                    FakeResponse::bytes(403, "text/plain", INJECTION.as_bytes().to_vec())
                }
            })
        });
        let run = tree_in_github_actions(&reg);
        let line = assert_refused(&run, &[reg.addr(), "403", "denied\\n::add-mask::s3cret"]);
        assert!(!line.contains('\n'));
        assert_no_injected_commands(&run);
    }
}

#[test]
fn annotations_shown_by_tree_cannot_inject_workflow_commands() {
    let (_, digest) = tiny_manifest();
    let att_tag = format!("sha256-{}.att", &digest["sha256:".len()..]);
    let att = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", "1".repeat(64)), "size": 2},
        "layers": [{
            "mediaType": "application/vnd.dsse.envelope.v1+json",
            "digest": format!("sha256:{}", "2".repeat(64)),
            "size": 2,
            "annotations": {"predicateType": INJECTION}
        }]
    }))
    .unwrap();
    let tags = serde_json::json!({"name": "app", "tags": ["v1", att_tag]});
    let reg = registry(move |req| {
        if req.path.ends_with(&format!("/manifests/{att_tag}")) {
            Some(FakeResponse::bytes(
                200,
                "application/vnd.oci.image.manifest.v1+json",
                att.clone(),
            ))
        } else if is_get(req, "/tags/list") {
            Some(FakeResponse::json(200, &tags))
        } else {
            None
        }
    });
    let run = tree_in_github_actions(&reg);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert!(
        run.stdout().contains("denied\\n::add-mask::s3cret"),
        "{}",
        run.stdout()
    );
    assert_no_injected_commands(&run);
}

// ---------------------------------------------------------------------------------------
// Writes that land late, or are answered as failed after they landed
// ---------------------------------------------------------------------------------------

/// Another signer, writing straight into the registry: appends a layer of its own to a
/// `.sig` manifest (created if absent).
struct OtherSigner {
    registry: String,
    repo: String,
    tag: String,
    layer: serde_json::Value,
}

impl OtherSigner {
    fn new(reg: &Registry, repo: &str, tag: &str) -> OtherSigner {
        let payload = b"{\"critical\":{\"type\":\"another signer\"}}".to_vec();
        let digest = reg.push_blob(repo, &payload);
        reg.push_blob(repo, b"{}");
        OtherSigner {
            registry: reg.addr().to_string(),
            repo: repo.to_string(),
            tag: tag.to_string(),
            layer: serde_json::json!({
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": digest,
                "size": payload.len(),
                "annotations": {"dev.cosignproject.cosign/signature": "bm90IGEgc2lnbmF0dXJl"}
            }),
        }
    }

    fn digest(&self) -> &str {
        self.layer["digest"].as_str().unwrap()
    }

    /// The `.sig` manifest now, if any.
    fn current(&self) -> Option<Vec<u8>> {
        let path = format!("/v2/{}/manifests/{}", self.repo, self.tag);
        let r = http_request(
            &self.registry,
            "GET",
            &path,
            &[("Accept", MANIFEST_ACCEPT)],
            b"",
        )
        .unwrap();
        (r.status == 200).then_some(r.body)
    }

    fn put(&self, bytes: &[u8]) {
        let path = format!("/v2/{}/manifests/{}", self.repo, self.tag);
        let r = http_request(
            &self.registry,
            "PUT",
            &path,
            &[("Content-Type", media_type::OCI_MANIFEST)],
            bytes,
        )
        .unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
    }

    fn append(&self) {
        let mut manifest = match self.current() {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap(),
            None => serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_MANIFEST,
                "config": {"mediaType": media_type::OCI_CONFIG, "digest": digest_of(b"{}"), "size": 2},
                "layers": []
            }),
        };
        manifest["layers"]
            .as_array_mut()
            .unwrap()
            .push(self.layer.clone());
        self.put(&serde_json::to_vec(&manifest).unwrap());
    }
}

/// The layer digests of the `.sig` manifest at `tag`.
fn sig_layers(reg: &Registry, repo: &str, tag: &str) -> Vec<String> {
    let (bytes, _) = reg.get_manifest(repo, tag).expect(".sig manifest");
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

struct Signing {
    reg: Registry,
    img: Pushed,
    key: common::keys::Key,
    sig_tag: String,
    _dir: TempDir,
}

fn signing(seed: u64) -> Signing {
    let reg = Registry::start();
    let img = push_to(&reg, "app", &["linux/amd64"], seed);
    let dir = tempdir();
    let key = openssl_key(dir.path(), "k");
    let sig_tag = format!("sha256-{}.sig", &img.digest["sha256:".len()..]);
    Signing {
        reg,
        img,
        key,
        sig_tag,
        _dir: dir,
    }
}

impl Signing {
    /// `wharf sign` of the index through `proxy`.
    fn sign_via(&self, proxy: &Proxy) {
        run_ok(
            wharf()
                .args(["sign", "--allow-insecure-registry", "--tlog-upload=false"])
                .args(["--key", self.key.private()])
                .arg(self.img.via(proxy.addr(), &self.img.digest)),
        );
    }

    /// Both signatures are in the `.sig` manifest, and wharf's verifies.
    fn assert_both_signatures(&self, other: &OtherSigner) {
        let layers = sig_layers(&self.reg, &self.img.name, &self.sig_tag);
        assert!(
            layers.iter().any(|d| d == other.digest()),
            "the other signer's signature was lost: {layers:?}"
        );
        assert_eq!(layers.len(), 2, "{layers:?}");
        run_ok(&mut wharf_verify_key(self.key.public(), &self.img.index()));
    }
}

/// The first request `method` makes to `path_end`, and only that one, gets `action`.
fn first(method: &'static str, path_end: String, action: Action) -> common::proxy::Policy {
    let done = AtomicBool::new(false);
    Box::new(move |req| {
        if req.method == method
            && req.path.ends_with(&path_end)
            && !done.swap(true, Ordering::SeqCst)
        {
            action.clone()
        } else {
            Action::Forward
        }
    })
}

/// Signs through a proxy that gives the first `method` request for the `.sig` tag the action
/// `intercept` makes (given another signer writing straight into the registry), then checks
/// both signatures survived. `signed_before`: the other signer signed first.
fn sign_while_another_signer_writes(
    seed: u64,
    signed_before: bool,
    method: &'static str,
    intercept: impl FnOnce(Arc<OtherSigner>) -> Action,
) {
    let s = signing(seed);
    let other = Arc::new(OtherSigner::new(&s.reg, &s.img.name, &s.sig_tag));
    if signed_before {
        other.append();
    }
    let action = intercept(other.clone());
    let name = match &action {
        Action::Intercept { answer: None, .. } => "intercept".to_string(),
        Action::Intercept {
            answer: Some(_), ..
        } => "intercept+503".to_string(),
        other => panic!("not an interception: {other:?}"),
    };
    let proxy = Proxy::start(
        s.reg.addr(),
        first(method, format!("/manifests/{}", s.sig_tag), action),
    );
    s.sign_via(&proxy);
    assert_eq!(proxy.count(&name), 1);
    s.assert_both_signatures(&other);
}

#[test]
fn a_write_answered_503_after_it_landed_is_merged_again_not_resent() {
    // wharf's write lands; another signer appends; then wharf hears 503.
    sign_while_another_signer_writes(41, false, "PUT", |other| Action::Intercept {
        hook: Hook::new(move || other.append()),
        delay: Duration::ZERO,
        answer: Some(Box::new(Fault::Unavailable.action())),
    });
}

#[test]
fn a_write_based_on_a_read_that_arrived_late_is_not_completed() {
    // wharf reads "no signatures"; the answer is held while another signer writes, and
    // arrives a second later: a write from it would drop the other signature.
    sign_while_another_signer_writes(42, false, "GET", |other| Action::Intercept {
        hook: Hook::new(move || other.append()),
        delay: Duration::from_secs(1),
        answer: None,
    });
}

#[test]
fn a_stale_write_replayed_after_ours_is_caught_and_ours_written_again() {
    // wharf's write lands, and an old write of the other signer's lands again right after.
    sign_while_another_signer_writes(43, true, "PUT", |other| {
        let before = other.current().unwrap();
        Action::Intercept {
            hook: Hook::new(move || other.put(&before)),
            delay: Duration::ZERO,
            answer: None,
        }
    });
}
