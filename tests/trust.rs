//! The Sigstore trust root through TUF: `wharf trust update|show` and the automatic refresh of
//! every command that needs the trust root, against a python-tuf repository on loopback.

mod common;

use common::hostile::{assert_refused, run_bounded};
use common::standin::SigstoreStandIn;
use common::tuf::{FileServer, Served, TufRepo};
use common::{
    error_line, make_layout, push_to, run_fail, run_ok, stderr_of, stdout_of, tempdir, wharf,
    BuiltLayout, LayoutSpec, Registry, TempDir,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const TRUSTED_ROOT: &str = "trusted_root.json";
const SIGNING_CONFIG: &str = "signing_config.v0.2.json";

fn public_good_trusted_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sigstore/public_good_trusted_root.json")
}

/// The public-good trusted root with other bytes (re-indented): a second version to publish.
fn reformatted_trusted_root(dir: &Path) -> PathBuf {
    let value: Value =
        serde_json::from_slice(&std::fs::read(public_good_trusted_root()).unwrap()).unwrap();
    let path = dir.join("trusted_root-2.json");
    std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
    path
}

/// A TUF repository serving `trusted_root.json` and a signing config, its server, a cache
/// directory of its own and an unsigned image layout to run `wharf verify` on.
struct Env {
    repo: TufRepo,
    /// The server's URL, the same after it went down.
    url: String,
    server: Option<FileServer>,
    cache: TempDir,
    work: TempDir,
    layout: BuiltLayout,
}

impl Env {
    fn new() -> Env {
        let work = tempdir();
        let signing_config = work.path().join("signing_config.json");
        std::fs::write(
            &signing_config,
            br#"{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json"}"#,
        )
        .unwrap();
        let repo = TufRepo::init(&[
            (TRUSTED_ROOT, &public_good_trusted_root()),
            (SIGNING_CONFIG, &signing_config),
        ]);
        let server = FileServer::start(repo.path());
        let layout = make_layout(
            &work.path().join("layout"),
            &LayoutSpec {
                platforms: vec!["linux/amd64"],
                layer_size: 64,
                ..LayoutSpec::default()
            },
        );
        Env {
            url: server.url(),
            repo,
            server: Some(server),
            cache: tempdir(),
            work,
            layout,
        }
    }

    fn server(&self) -> &FileServer {
        self.server.as_ref().expect("the server is up")
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    /// `wharf` with this cache and this repository (`WHARF_TUF_URL`, `WHARF_TUF_ROOT`).
    fn wharf(&self) -> Command {
        let mut cmd = wharf();
        cmd.env("XDG_CACHE_HOME", self.cache.path())
            .env("WHARF_TUF_URL", &self.url)
            .env("WHARF_TUF_ROOT", self.repo.initial_root());
        cmd
    }

    fn update(&self) -> Output {
        run_ok(self.wharf().args(["trust", "update", "--output", "json"]))
    }

    fn show(&self) -> Value {
        let out = run_ok(self.wharf().args(["trust", "show", "--output", "json"]));
        serde_json::from_slice(&out.stdout).expect("trust show JSON")
    }

    fn cache_file(&self) -> PathBuf {
        PathBuf::from(self.show()["tuf"]["cache_file"].as_str().expect("a cache"))
    }

    /// Moves the cache's expiry into the past, as time passing would.
    fn expire_cache(&self) {
        let path = self.cache_file();
        let mut cache: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        cache["expires"] = "2000-01-01T00:00:00Z".into();
        std::fs::write(&path, serde_json::to_vec(&cache).unwrap()).unwrap();
    }

    /// `wharf verify` of the unsigned layout under `policy`.
    fn verify_cmd(&self, policy: &[&str]) -> Command {
        let mut cmd = self.wharf();
        cmd.arg("verify").args(policy).arg(format!(
            "oci:{}@{}",
            self.layout.dir.display(),
            self.layout.root_digest
        ));
        cmd
    }

    /// `wharf verify` of the unsigned layout with an identity policy (it needs the trust
    /// root): its warning lines.
    fn verify_unsigned(&self) -> Vec<String> {
        unsigned_warnings(&mut self.verify_cmd(IDENTITY_POLICY))
    }
}

const IDENTITY_POLICY: &[&str] = &[
    "--certificate-identity",
    "someone@example.com",
    "--certificate-oidc-issuer",
    "https://issuer.example.com",
];

/// Runs a verify of the unsigned layout, which must fail for want of signatures (after the
/// trust root was obtained); returns its warning lines.
fn unsigned_warnings(cmd: &mut Command) -> Vec<String> {
    let out = run_fail(cmd);
    assert!(
        error_line(&out).contains("signature"),
        "{}",
        stderr_of(&out)
    );
    warnings(&out)
}

/// Exactly one warning line, naming every one of `needles`.
fn assert_one_warning(warnings: &[String], needles: &[&str]) {
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for needle in needles {
        assert!(warnings[0].contains(needle), "{}", warnings[0]);
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn warnings(out: &Output) -> Vec<String> {
    stderr_of(out)
        .lines()
        .filter(|l| l.starts_with("wharf: warning:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn update_fetches_verifies_and_caches_the_trust_root() {
    let env = Env::new();
    assert_eq!(env.show()["source"], "not-cached");
    let report = json(&env.update());
    assert_eq!(report["repository"], env.url().as_str());
    assert_eq!(report["versions"]["root"], 1);
    assert_eq!(report["versions"]["timestamp"], 1);
    assert_eq!(report["fresh"], true);
    assert_eq!(report["signing_config"], true);
    let cache_file = PathBuf::from(report["cache_file"].as_str().unwrap());
    assert!(
        cache_file.starts_with(env.cache.path().join("wharf/tuf")),
        "{}",
        cache_file.display()
    );
    let expected = common::sha256_hex(&std::fs::read(public_good_trusted_root()).unwrap());
    assert_eq!(report["trusted_root_sha256"], expected.as_str());

    let shown = env.show();
    assert_eq!(shown["source"], "tuf-cache");
    assert_eq!(shown["tuf"]["versions"], report["versions"]);

    let text = stdout_of(&run_ok(env.wharf().args(["trust", "show"])));
    assert!(text.contains(&env.url()), "{text}");
    assert!(text.contains("fresh"), "{text}");
}

#[test]
fn a_fresh_cache_is_used_without_the_network() {
    let mut env = Env::new();
    env.update();
    let before = env.server().requests();
    assert_eq!(env.verify_unsigned(), Vec::<String>::new());
    assert_eq!(
        env.server().requests(),
        before,
        "a fresh cache asked the server"
    );

    // With the server gone, the fresh cache still serves, silently.
    env.server = None;
    assert_eq!(env.verify_unsigned(), Vec::<String>::new());
}

#[test]
fn an_expired_cache_is_refreshed_by_the_next_command() {
    let env = Env::new();
    env.update();
    let newer = reformatted_trusted_root(env.work.path());
    env.repo.publish(&[(TRUSTED_ROOT, &newer)], 7 * 86400);
    env.expire_cache();
    let before = env.server().requests();
    assert_eq!(env.verify_unsigned(), Vec::<String>::new());
    assert!(
        env.server().requests() > before,
        "an expired cache was not refreshed"
    );
    let shown = env.show();
    assert_eq!(shown["tuf"]["fresh"], true);
    assert_eq!(shown["tuf"]["versions"]["targets"], 2);
    let expected = common::sha256_hex(&std::fs::read(&newer).unwrap());
    assert_eq!(shown["trusted_root_sha256"], expected.as_str());
}

#[test]
fn a_rotated_root_key_is_followed() {
    let env = Env::new();
    env.update();
    env.repo.rotate_root();
    let newer = reformatted_trusted_root(env.work.path());
    env.repo.publish(&[(TRUSTED_ROOT, &newer)], 7 * 86400);
    let report = json(&env.update());
    assert_eq!(report["versions"]["root"], 2);
    assert_eq!(report["versions"]["targets"], 2);

    // A fresh cache starts from root version 2: a third root signed by the second key only
    // is accepted without the first key.
    env.repo.rotate_root();
    env.repo.publish(&[], 7 * 86400);
    let report = json(&env.update());
    assert_eq!(report["versions"]["root"], 3);
}

#[test]
fn a_root_signed_only_by_the_new_key_is_refused() {
    let env = Env::new();
    env.update();
    env.repo.rotate_root();
    // Replace 2.root.json by a copy whose signature from the old key is gone.
    let path = env.repo.path().join("2.root.json");
    let mut root: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let signatures = root["signatures"].as_array_mut().unwrap();
    assert_eq!(signatures.len(), 2);
    signatures.remove(0);
    std::fs::write(&path, serde_json::to_vec(&root).unwrap()).unwrap();
    let cached = std::fs::read(env.cache_file()).unwrap();

    let out = run_fail(env.wharf().args(["trust", "update"]));
    let line = error_line(&out);
    assert!(line.contains("root"), "{line}");
    assert_eq!(std::fs::read(env.cache_file()).unwrap(), cached);
}

#[test]
fn an_expired_timestamp_is_refused_and_the_cache_kept() {
    let env = Env::new();
    env.update();
    let cached = std::fs::read(env.cache_file()).unwrap();
    env.repo.publish(&[], -60);

    let run = run_bounded(
        env.wharf().args(["trust", "update"]),
        Duration::from_secs(60),
    );
    assert_refused(&run, &["timestamp", "expired", &env.url()]);
    assert_eq!(
        std::fs::read(env.cache_file()).unwrap(),
        cached,
        "the cache changed"
    );

    // A command with an expired cache tries, fails, and goes on with the cache: one warning.
    env.expire_cache();
    assert_one_warning(
        &env.verify_unsigned(),
        &["timestamp metadata is expired", "using the copy cached"],
    );
}

#[test]
fn a_rollback_to_an_older_timestamp_is_refused() {
    let env = Env::new();
    let old_timestamp = std::fs::read(env.repo.path().join("timestamp.json")).unwrap();
    env.repo.publish(&[], 7 * 86400);
    let report = json(&env.update());
    assert_eq!(report["versions"]["timestamp"], 2);
    let cached = std::fs::read(env.cache_file()).unwrap();

    env.server()
        .serve("/timestamp.json", Served::Bytes(old_timestamp));
    let run = run_bounded(
        env.wharf().args(["trust", "update"]),
        Duration::from_secs(60),
    );
    let line = assert_refused(&run, &["timestamp", "version 1", "version 2"]);
    assert!(line.contains(&env.url()), "{line}");
    assert_eq!(
        std::fs::read(env.cache_file()).unwrap(),
        cached,
        "the cache changed"
    );
}

#[test]
fn a_target_whose_hash_does_not_match_is_refused() {
    let env = Env::new();
    let target = env.repo.target_file(TRUSTED_ROOT);
    let mut bytes = std::fs::read(&target).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20; // same length, other content
    std::fs::write(&target, &bytes).unwrap();

    let run = run_bounded(
        env.wharf().args(["trust", "update"]),
        Duration::from_secs(60),
    );
    assert_refused(&run, &[TRUSTED_ROOT, "Hash mismatch"]);
    assert_eq!(
        env.show()["source"],
        "not-cached",
        "a bad target was cached"
    );
}

#[test]
fn huge_metadata_is_refused_within_bounds() {
    let env = Env::new();
    for path in ["/timestamp.json", "/2.root.json", "/1.snapshot.json"] {
        env.server().serve(path, Served::Endless);
        let run = run_bounded(
            env.wharf().args(["trust", "update"]),
            Duration::from_secs(60),
        );
        let name = path.trim_start_matches('/');
        assert_refused(&run, &[name, "larger than"]);
        assert_eq!(
            env.show()["source"],
            "not-cached",
            "{name}: something was cached"
        );
        env.server().forget(path);
    }
}

#[test]
fn with_the_server_down_commands_work_from_the_cache() {
    let mut env = Env::new();
    env.update();
    env.expire_cache();
    env.server = None;

    assert_one_warning(
        &env.verify_unsigned(),
        &[&env.url(), "using the copy cached"],
    );

    // An explicit update says what failed, and keeps the cache.
    let cached = std::fs::read(env.cache_file()).unwrap();
    let run = run_bounded(
        env.wharf().args(["trust", "update"]),
        Duration::from_secs(60),
    );
    assert_refused(&run, &[&env.url()]);
    assert_eq!(std::fs::read(env.cache_file()).unwrap(), cached);
}

#[test]
fn nothing_cached_and_no_server() {
    let env = Env::new();
    // A mirror of the public-good repository (no --tuf-root): the built-in root, one warning.
    let warnings = unsigned_warnings(
        env.verify_cmd(IDENTITY_POLICY)
            .env_remove("WHARF_TUF_ROOT")
            .env("WHARF_TUF_URL", common::UNREACHABLE_TUF_URL),
    );
    assert_one_warning(
        &warnings,
        &[common::UNREACHABLE_TUF_URL, "built into wharf"],
    );

    // A private deployment (its own root): no fallback, one error line.
    let run = run_bounded(
        env.verify_cmd(IDENTITY_POLICY)
            .env("WHARF_TUF_URL", common::UNREACHABLE_TUF_URL),
        Duration::from_secs(60),
    );
    assert_refused(&run, &["nothing is cached", common::UNREACHABLE_TUF_URL]);
}

#[test]
fn trusted_root_flag_and_key_only_checks_bypass_tuf() {
    let env = Env::new();
    let trusted_root = public_good_trusted_root();
    let warnings = unsigned_warnings(
        env.verify_cmd(IDENTITY_POLICY)
            .arg("--trusted-root")
            .arg(&trusted_root),
    );
    assert_eq!(warnings, Vec::<String>::new());

    let key = common::keys::openssl_key(env.work.path(), "key");
    let warnings =
        unsigned_warnings(&mut env.verify_cmd(&["--insecure-ignore-tlog", "--key", key.public()]));
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(env.server().requests(), 0, "TUF was asked");
    assert_eq!(env.show()["source"], "not-cached");

    let shown: Value = json(&run_ok(
        env.wharf()
            .args(["trust", "show", "--output", "json", "--trusted-root"])
            .arg(&trusted_root),
    ));
    assert_eq!(shown["source"], "file");
}

/// The root fetched through TUF is the one `verify` trusts: a keyless signature from the
/// loopback Sigstore verifies with its trusted root served by TUF, and not without it.
#[test]
fn verify_trusts_the_root_served_through_tuf() {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    let img = push_to(&reg, "app", &["linux/amd64"], 21);
    run_ok(
        wharf()
            .args(["sign", "--allow-insecure-registry"])
            .args(si.wharf_args())
            .args(["--identity-token", &si.token("")])
            .arg(img.index()),
    );
    let repo = TufRepo::init(&[(TRUSTED_ROOT, &si.trusted_root)]);
    let server = FileServer::start(repo.path());
    let cache = tempdir();
    let verify = |tuf_url: &str| {
        let mut cmd = wharf();
        cmd.env("XDG_CACHE_HOME", cache.path())
            .env("WHARF_TUF_URL", tuf_url)
            .env("WHARF_TUF_ROOT", repo.initial_root())
            .args([
                "verify",
                "--allow-insecure-registry",
                "--rekor-url",
                &si.rekor_url,
            ])
            .args(["--certificate-identity", &si.identity])
            .args(["--certificate-oidc-issuer", &si.oidc_issuer])
            .arg(img.index());
        cmd
    };
    let out = run_ok(&mut verify(&server.url()));
    assert_eq!(warnings(&out), Vec::<String>::new());
    assert!(server.requests() > 0);

    // The public-good root (a mirror of it that cannot be reached) does not vouch for it.
    let empty_cache = tempdir();
    let out = run_fail(
        verify(common::UNREACHABLE_TUF_URL)
            .env_remove("WHARF_TUF_ROOT")
            .env("XDG_CACHE_HOME", empty_cache.path()),
    );
    assert_one_warning(&warnings(&out), &["built into wharf"]);
}
