//! The registries people use and where their credentials live: podman's `auth.json` (in the
//! order podman reads it) beside the Docker config, against a real `docker-registry` with
//! htpasswd; identity tokens exchanged in an OAuth2 refresh-token grant with a token service
//! that takes nothing else; and Amazon ECR's answers for a missing repository and an
//! IMMUTABLE tag, reproduced in its own words on loopback.
//!
//! Every refusal is one error line naming what and where, with a non-zero exit.

mod common;

use common::fake_registry::{
    basic_challenge, bearer_protected, ecr_immutable_tags, ecr_missing_repository,
    refresh_token_grant, tiny_image_answer, FakeServer, ECR_ACCOUNT,
};
use common::keys::openssl_key;
use common::proxy::{forward_all, Proxy};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "releaser";
const PASSWORD: &str = "s3cret-registry-password";
const WRONG_PASSWORD: &str = "not-the-registry-password";

// ---------------------------------------------------------------------------------------
// podman's auth.json beside the Docker config
// ---------------------------------------------------------------------------------------

/// A home directory of its own for wharf: no login file of the machine's is read, and each
/// test writes the ones it needs.
struct Home {
    dir: TempDir,
}

impl Home {
    fn new() -> Home {
        let home = Home { dir: tempdir() };
        std::fs::create_dir_all(home.runtime_dir()).unwrap();
        home
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `$XDG_RUNTIME_DIR`, where `podman login` writes.
    fn runtime_dir(&self) -> PathBuf {
        self.path("run")
    }

    /// Writes a login file at `relative` with `user`:`password` for `key`.
    fn login_file(&self, relative: &str, key: &str, user: &str, password: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let auth = basic_auth(user, password);
        let auth = auth.strip_prefix("Basic ").unwrap();
        let config = serde_json::json!({"auths": {key: {"auth": auth}}});
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        path
    }

    /// `wharf` with this home: `HOME`, `XDG_RUNTIME_DIR` and `DOCKER_CONFIG` inside it, no
    /// `XDG_CONFIG_HOME` or `REGISTRY_AUTH_FILE` of the machine's.
    fn wharf(&self) -> Command {
        let mut cmd = wharf();
        cmd.env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("DOCKER_CONFIG", self.path(".docker"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("REGISTRY_AUTH_FILE")
            .arg("--allow-insecure-registry");
        cmd
    }
}

/// A one-platform layout in `dir`, its image different for every `seed`.
fn layout_in(dir: &Path, seed: u64) -> BuiltLayout {
    make_layout(
        &dir.join(format!("layout-{seed}")),
        &LayoutSpec {
            platforms: vec!["linux/amd64"],
            layer_size: 512,
            seed,
            ..LayoutSpec::default()
        },
    )
}

/// `wharf push` of a fresh layout to `reg`'s `repo:v1`, as `home` has it set up and
/// `configure` adds (flags, variables).
fn push_with(
    home: &Home,
    reg: &Registry,
    repo: &str,
    seed: u64,
    configure: impl FnOnce(&mut Command),
) -> Output {
    let layout = layout_in(home.dir.path(), seed);
    let mut cmd = home.wharf();
    configure(&mut cmd);
    cmd.arg("push")
        .arg(&layout.dir)
        .arg(format!("{}:v1", reg.repo(repo)))
        .output()
        .expect("run wharf push")
}

/// [`push_with`] as `home` has it set up.
fn push(home: &Home, reg: &Registry, repo: &str, seed: u64) -> Output {
    push_with(home, reg, repo, seed, |_| {})
}

fn assert_pushed(out: &Output, reg: &Registry, repo: &str) {
    assert!(out.status.success(), "push failed:\n{}", stderr_of(out));
    assert_eq!(reg.tags(repo), ["v1"]);
    assert_no_password_shown(out);
}

/// The push was refused with one line saying the credentials were wrong or missing.
fn assert_refused_credentials(out: &Output, reg: &Registry, why: &str) -> String {
    let line = error_line(out);
    assert!(line.contains(reg.addr()), "{line}");
    assert!(line.contains(why), "{line}");
    assert_no_password_shown(out);
    line
}

fn assert_no_password_shown(out: &Output) {
    for text in [stdout_of(out), stderr_of(out)] {
        assert!(!text.contains(PASSWORD), "password shown: {text}");
        assert!(!text.contains(WRONG_PASSWORD), "password shown: {text}");
    }
}

#[test]
fn podman_auth_json_in_xdg_runtime_dir_logs_in() {
    let reg = Registry::start_with_basic_auth(USER, PASSWORD);
    let home = Home::new();
    home.login_file("run/containers/auth.json", reg.addr(), USER, PASSWORD);
    assert_pushed(&push(&home, &reg, "app", 1), &reg, "app");
}

#[test]
fn podman_auth_json_in_the_config_home_logs_in() {
    let reg = Registry::start_with_basic_auth(USER, PASSWORD);
    let home = Home::new();
    home.login_file(".config/containers/auth.json", reg.addr(), USER, PASSWORD);
    assert_pushed(&push(&home, &reg, "app", 2), &reg, "app");

    // XDG_CONFIG_HOME moves it, as it does for podman.
    let home = Home::new();
    home.login_file("elsewhere/containers/auth.json", reg.addr(), USER, PASSWORD);
    let out = push_with(&home, &reg, "other", 3, |cmd| {
        cmd.env("XDG_CONFIG_HOME", home.path("elsewhere"));
    });
    assert_pushed(&out, &reg, "other");
}

#[test]
fn registry_auth_file_takes_the_place_of_podmans_own_files() {
    let reg = Registry::start_with_basic_auth(USER, PASSWORD);
    let home = Home::new();
    let named = home.login_file("ci/auth.json", reg.addr(), USER, PASSWORD);
    // What podman reads without REGISTRY_AUTH_FILE, wrong here: it is not read with it.
    home.login_file("run/containers/auth.json", reg.addr(), USER, WRONG_PASSWORD);
    let out = push_with(&home, &reg, "app", 4, |cmd| {
        cmd.env("REGISTRY_AUTH_FILE", &named);
    });
    assert_pushed(&out, &reg, "app");

    // A REGISTRY_AUTH_FILE not written yet has no entries, as for podman: the Docker config
    // is read after it.
    let home = Home::new();
    home.login_file(".docker/config.json", reg.addr(), USER, PASSWORD);
    let out = push_with(&home, &reg, "docker", 5, |cmd| {
        cmd.env("REGISTRY_AUTH_FILE", home.path("not-yet/auth.json"));
    });
    assert_pushed(&out, &reg, "docker");
}

#[test]
fn the_first_file_with_an_entry_wins_auth_file_then_podman_then_docker() {
    let reg = Registry::start_with_basic_auth(USER, PASSWORD);

    // podman's file before the Docker config.
    let home = Home::new();
    home.login_file("run/containers/auth.json", reg.addr(), USER, PASSWORD);
    home.login_file(".docker/config.json", reg.addr(), USER, WRONG_PASSWORD);
    assert_pushed(&push(&home, &reg, "podman-first", 6), &reg, "podman-first");

    let home = Home::new();
    home.login_file("run/containers/auth.json", reg.addr(), USER, WRONG_PASSWORD);
    home.login_file(".docker/config.json", reg.addr(), USER, PASSWORD);
    let out = push(&home, &reg, "podman-wrong", 7);
    assert_refused_credentials(&out, &reg, "wrong credentials");
    assert!(reg.tags("podman-wrong").is_empty());

    // A file with no entry for the registry is passed over.
    let home = Home::new();
    home.login_file(
        "run/containers/auth.json",
        "other.example",
        USER,
        WRONG_PASSWORD,
    );
    home.login_file(".docker/config.json", reg.addr(), USER, PASSWORD);
    assert_pushed(&push(&home, &reg, "passed-over", 8), &reg, "passed-over");

    // --registry-auth-file before podman's.
    let home = Home::new();
    let named = home.login_file("named.json", reg.addr(), USER, PASSWORD);
    home.login_file("run/containers/auth.json", reg.addr(), USER, WRONG_PASSWORD);
    let out = push_with(&home, &reg, "named", 9, |cmd| {
        cmd.arg("--registry-auth-file").arg(&named);
    });
    assert_pushed(&out, &reg, "named");
}

#[test]
fn a_podman_namespace_entry_serves_its_namespace_only() {
    let reg = Registry::start_with_basic_auth(USER, PASSWORD);
    let home = Home::new();
    // `podman login HOST/team` writes the key with the namespace.
    let key = format!("{}/team", reg.addr());
    home.login_file("run/containers/auth.json", &key, USER, PASSWORD);
    assert_pushed(&push(&home, &reg, "team/app", 10), &reg, "team/app");

    let out = push(&home, &reg, "other/app", 11);
    assert_refused_credentials(&out, &reg, "requires authentication");
    let out = push(&home, &reg, "team-b/app", 12);
    assert_refused_credentials(&out, &reg, "requires authentication");
}

#[test]
fn a_malformed_podman_auth_json_is_one_line_naming_it() {
    let reg = Registry::start_with_basic_auth(USER, PASSWORD);
    let home = Home::new();
    let file = home.path("run/containers/auth.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, format!("{{\"auths\": {{\"{}\": ", reg.addr())).unwrap();
    let out = push(&home, &reg, "app", 13);
    let line = error_line(&out);
    eprintln!("LINE {line}");
    assert!(line.contains(file.to_str().unwrap()), "{line}");
    assert!(line.contains("malformed"), "{line}");
}

// ---------------------------------------------------------------------------------------
// Identity tokens: an OAuth2 refresh-token grant, never a Basic password
// ---------------------------------------------------------------------------------------

const REFRESH_TOKEN: &str = "refresh-token-from-docker-login-0f3c";
const ACCESS_TOKEN: &str = "access-token-for-app-7d1e";

/// A Docker config in `dir` with an identity token (and the user name ACR writes beside it)
/// for `registry`.
fn identity_token_config(dir: &Path, registry: &str) -> PathBuf {
    let config_dir = dir.join("docker");
    std::fs::create_dir_all(&config_dir).unwrap();
    let auth = basic_auth("00000000-0000-0000-0000-000000000000", "");
    let config = serde_json::json!({"auths": {registry: {
        "auth": auth.strip_prefix("Basic ").unwrap(),
        "identitytoken": REFRESH_TOKEN,
    }}});
    std::fs::write(
        config_dir.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    config_dir
}

/// `wharf tree REG/app:v1` with an identity token for `reg` in the Docker config, both
/// `reg` and `insecure` allowed over plain HTTP.
fn tree_with_identity_token(reg: &FakeServer, insecure: &[&str]) -> Output {
    let tmp = tempdir();
    let config = identity_token_config(tmp.path(), reg.addr());
    let mut cmd = wharf();
    cmd.env("DOCKER_CONFIG", &config)
        .env("HOME", tmp.path())
        .env("XDG_RUNTIME_DIR", tmp.path())
        .env_remove("REGISTRY_AUTH_FILE")
        .args(["--insecure-registry", reg.addr()]);
    for host in insecure {
        cmd.args(["--insecure-registry", host]);
    }
    cmd.args(["tree", &format!("{}/app:v1", reg.addr())])
        .output()
        .unwrap()
}

fn assert_no_token_shown(out: &Output) {
    for text in [stdout_of(out), stderr_of(out)] {
        assert!(!text.contains(REFRESH_TOKEN), "refresh token shown: {text}");
        assert!(!text.contains(ACCESS_TOKEN), "access token shown: {text}");
    }
}

/// No request to `server` carried the refresh token or any Basic credentials.
fn assert_refresh_token_never_sent_as_password(server: &FakeServer) {
    for req in server.requests() {
        let auth = req.authorization().unwrap_or_default();
        assert!(
            !auth.starts_with("Basic"),
            "Basic credentials sent: {req:?}"
        );
        assert!(!req.path.contains(REFRESH_TOKEN), "token in a URL: {req:?}");
    }
}

#[test]
fn an_identity_token_is_exchanged_in_a_refresh_token_grant() {
    let tokens = FakeServer::start(refresh_token_grant(REFRESH_TOKEN, ACCESS_TOKEN));
    let reg = FakeServer::start(bearer_protected(
        ACCESS_TOKEN,
        tokens.url("/oauth2/token"),
        tiny_image_answer,
    ));
    let out = tree_with_identity_token(&reg, &[tokens.addr()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains(&common::fake_registry::tiny_manifest().1));
    assert_no_token_shown(&out);

    let grants = tokens.requests();
    assert!(!grants.is_empty());
    for grant in &grants {
        let form = grant.form();
        assert_eq!(grant.method, "POST");
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], REFRESH_TOKEN);
        assert_eq!(form["service"], "fake");
        assert_eq!(form["scope"], "repository:app:pull");
        assert_eq!(form["client_id"], "wharf");
    }
    assert_refresh_token_never_sent_as_password(&tokens);
    assert_refresh_token_never_sent_as_password(&reg);
    for req in reg.requests() {
        let auth = req.authorization().unwrap_or_default();
        assert!(
            !auth.contains(REFRESH_TOKEN),
            "refresh token at the registry"
        );
    }
}

#[test]
fn an_identity_token_is_not_sent_to_a_plain_http_token_service() {
    let tokens = FakeServer::start(refresh_token_grant(REFRESH_TOKEN, ACCESS_TOKEN));
    let reg = FakeServer::start(bearer_protected(
        ACCESS_TOKEN,
        tokens.url("/oauth2/token"),
        tiny_image_answer,
    ));
    // The token service's host is not marked insecure.
    let out = tree_with_identity_token(&reg, &[]);
    let line = error_line(&out);
    eprintln!("LINE {line}");
    assert!(line.contains("over plain HTTP"), "{line}");
    assert!(
        line.contains(&format!("--insecure-registry {}", tokens.addr())),
        "{line}"
    );
    assert!(tokens.requests().is_empty(), "the token service was asked");
    assert_no_token_shown(&out);
}

#[test]
fn an_identity_token_is_never_a_basic_password() {
    let reg = FakeServer::start(|req| {
        if req.authorization().is_some() {
            tiny_image_answer(req)
        } else {
            basic_challenge()
        }
    });
    let out = tree_with_identity_token(&reg, &[]);
    let line = error_line(&out);
    eprintln!("LINE {line}");
    assert!(line.contains(reg.addr()), "{line}");
    assert!(line.contains("identity token"), "{line}");
    assert!(
        reg.authorized_requests().is_empty(),
        "credentials were sent"
    );
    assert_no_token_shown(&out);
}

#[test]
fn a_refused_identity_token_is_one_line_saying_to_log_in_again() {
    // A token service that takes no grant at all: the refresh token expired.
    let tokens = FakeServer::start(refresh_token_grant("another-refresh-token", ACCESS_TOKEN));
    let reg = FakeServer::start(bearer_protected(
        ACCESS_TOKEN,
        tokens.url("/oauth2/token"),
        tiny_image_answer,
    ));
    let out = tree_with_identity_token(&reg, &[tokens.addr()]);
    let line = error_line(&out);
    eprintln!("LINE {line}");
    for needle in [
        reg.addr(),
        tokens.addr(),
        "refused its identity token",
        "invalid_grant",
        "log in",
    ] {
        assert!(line.contains(needle), "{needle:?} missing: {line}");
    }
    assert_no_token_shown(&out);
    assert_refresh_token_never_sent_as_password(&tokens);

    // One that has no OAuth2 endpoint (404 to the POST).
    let tokens = FakeServer::start(|_| common::fake_registry::FakeResponse::status(404));
    let reg = FakeServer::start(bearer_protected(
        ACCESS_TOKEN,
        tokens.url("/token"),
        tiny_image_answer,
    ));
    let out = tree_with_identity_token(&reg, &[tokens.addr()]);
    let line = error_line(&out);
    eprintln!("LINE {line}");
    assert!(line.contains("does not take identity tokens"), "{line}");
    assert_refresh_token_never_sent_as_password(&tokens);
}

#[test]
fn a_token_service_redirecting_the_grant_does_not_get_it_passed_on() {
    let elsewhere = FakeServer::start(refresh_token_grant(REFRESH_TOKEN, ACCESS_TOKEN));
    let target = elsewhere.url("/oauth2/token");
    let tokens = FakeServer::start(move |_| {
        common::fake_registry::FakeResponse::status(307).with_header("Location", &target)
    });
    let reg = FakeServer::start(bearer_protected(
        ACCESS_TOKEN,
        tokens.url("/oauth2/token"),
        tiny_image_answer,
    ));
    let out = tree_with_identity_token(&reg, &[tokens.addr(), elsewhere.addr()]);
    let line = error_line(&out);
    assert!(line.contains("redirects the identity token"), "{line}");
    assert!(line.contains(elsewhere.addr()), "{line}");
    assert!(elsewhere.requests().is_empty(), "the grant was passed on");
    assert_no_token_shown(&out);
}

// ---------------------------------------------------------------------------------------
// Amazon ECR
// ---------------------------------------------------------------------------------------

#[test]
fn pushing_to_a_missing_ecr_repository_says_to_create_it() {
    // Every request for the repository gets ECR's answer.
    let reg = FakeServer::start(|req| {
        if req.path == "/v2/" {
            tiny_image_answer(req)
        } else {
            ecr_missing_repository("acme/app")
        }
    });
    let tmp = tempdir();
    let layout = layout_in(tmp.path(), 20);
    let out = wharf()
        .args(["--insecure-registry", reg.addr(), "push"])
        .arg(&layout.dir)
        .arg(format!("{}/acme/app:v1", reg.addr()))
        .output()
        .unwrap();
    let line = error_line(&out);
    eprintln!("LINE {line}");
    for needle in [
        reg.addr(),
        "NAME_UNKNOWN",
        &format!("does not exist in the registry with id '{ECR_ACCOUNT}'"),
        "`aws ecr create-repository --repository-name acme/app`",
        "repository creation template",
        "CREATE_ON_PUSH",
    ] {
        assert!(line.contains(needle), "{needle:?} missing: {line}");
    }
    // Nothing was written (there was nowhere to).
    assert!(reg.requests().iter().all(|r| r.method != "PUT"));
}

#[test]
fn an_immutable_ecr_repository_refuses_a_sig_rewrite_and_the_bundle_format_avoids_it() {
    let reg = Registry::start();
    let ecr = Proxy::start_with_manifest_rule(reg.addr(), forward_all(), ecr_immutable_tags());
    let tmp = tempdir();
    let layout = layout_in(tmp.path(), 21);
    let image = format!("{}/app@{}", ecr.addr(), layout.root_digest);
    run_ok(
        wharf()
            .args(["--allow-insecure-registry", "push"])
            .arg(&layout.dir)
            .arg(format!("{}/app:v1", ecr.addr())),
    );
    let first = openssl_key(tmp.path(), "first");
    let second = openssl_key(tmp.path(), "second");
    let sign = |key: &common::keys::Key, extra: &[&str]| {
        let mut cmd = wharf();
        cmd.args(["--allow-insecure-registry", "sign", "--tlog-upload=false"])
            .args(["--key", key.private()])
            .args(extra)
            .arg(&image);
        cmd
    };
    // The first signature creates the `.sig` tag: allowed.
    run_ok(&mut sign(&first, &[]));
    let sig_tag = format!("sha256-{}.sig", &layout.root_digest["sha256:".len()..]);
    let before = reg.manifest_digest("app", &sig_tag).expect(".sig tag");

    // A second one would rewrite it.
    let out = run_fail(&mut sign(&second, &[]));
    let line = error_line(&out);
    eprintln!("LINE {line}");
    for needle in [
        ecr.addr(),
        "TAG_INVALID",
        &sig_tag,
        "cannot be overwritten because the repository is immutable",
        "IMMUTABLE",
        "--bundle-format bundle",
    ] {
        assert!(line.contains(needle), "{needle:?} missing: {line}");
    }
    assert_eq!(reg.manifest_digest("app", &sig_tag), Some(before));

    // Signatures as referrers rewrite no tag of the image's.
    run_ok(&mut sign(&second, &["--bundle-format", "bundle"]));
    for key in [&first, &second] {
        run_ok(
            wharf()
                .args([
                    "--allow-insecure-registry",
                    "verify",
                    "--insecure-ignore-tlog",
                ])
                .args(["--key", key.public()])
                .arg(&image),
        );
    }
}
