//! Small HTTP/1.1 servers on loopback that play a registry, a token service or a storage
//! host misbehaving on purpose: each answers what its test's handler says (a 1 GiB body,
//! chunked or with a length; endless pages; a `Link`, `Location` or token `realm` on another
//! host) and records every request with its headers, so a test can check that no credential
//! reached a host it does not belong to. Another port on loopback counts as another host.
//!
//! One request per connection (`Connection: close`); request bodies are read into memory
//! (tests send small ones).

use super::proxy::{copy_body_into, framing, read_headers, read_line, reason};
use sha2::{Digest as _, Sha256};
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl FakeRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn authorization(&self) -> Option<&str> {
        self.header("Authorization")
    }
}

/// What an answer's body is.
#[derive(Debug, Clone)]
pub enum FakeBody {
    Bytes(Vec<u8>),
    /// `size` bytes of `fill`, written as they go (never held in memory): with a
    /// `Content-Length` when `declared`, else chunked. Writing stops when the client hangs up.
    Stream {
        size: u64,
        fill: u8,
        declared: bool,
    },
}

/// An answer.
#[derive(Debug, Clone)]
pub struct FakeResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: FakeBody,
}

impl FakeResponse {
    /// `status` with an empty body.
    pub fn status(status: u16) -> FakeResponse {
        FakeResponse {
            status,
            headers: Vec::new(),
            body: FakeBody::Bytes(Vec::new()),
        }
    }

    /// `status` with `body` as JSON.
    pub fn json(status: u16, body: &serde_json::Value) -> FakeResponse {
        FakeResponse::bytes(
            status,
            "application/json",
            serde_json::to_vec(body).unwrap(),
        )
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> FakeResponse {
        FakeResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: FakeBody::Bytes(body),
        }
    }

    /// `size` bytes of JSON-looking whitespace: chunked when `chunked`, else declared.
    pub fn huge(status: u16, content_type: &str, size: u64, chunked: bool) -> FakeResponse {
        FakeResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: FakeBody::Stream {
                size,
                fill: b' ',
                declared: !chunked,
            },
        }
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> FakeResponse {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One gibibyte: what a hostile peer answers instead of a small document.
pub const GIB: u64 = 1 << 30;

type Handler = dyn Fn(&FakeRequest) -> FakeResponse + Send + Sync;

/// A running fake server; dropping it stops accepting connections.
pub struct FakeServer {
    addr: String,
    records: Arc<Mutex<Vec<FakeRequest>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Starts a server on a free loopback port answering every request with `handler`.
    pub fn start(
        handler: impl Fn(&FakeRequest) -> FakeResponse + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        let addr = listener.local_addr().unwrap().to_string();
        let records: Arc<Mutex<Vec<FakeRequest>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let (records, stop) = (records.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (records, handler) = (records.clone(), handler.clone());
                    thread::spawn(move || {
                        // Errors (a client hanging up mid-answer) only end this connection.
                        let _ = serve(conn, &records, handler.as_ref());
                    });
                }
            })
        };
        FakeServer {
            addr,
            records,
            stop,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.records.lock().unwrap().clone()
    }

    /// The requests that carried an `Authorization` header.
    pub fn authorized_requests(&self) -> Vec<FakeRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.authorization().is_some())
            .collect()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr.parse().unwrap(), Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(conn: TcpStream, records: &Mutex<Vec<FakeRequest>>, handler: &Handler) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let Some(request_line) = read_line(&mut reader)? else {
        return Ok(());
    };
    let mut parts = request_line.splitn(3, ' ');
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let headers = read_headers(&mut reader)?;
    let mut body = Vec::new();
    copy_body_into(&mut reader, &mut body, &framing(&headers)?)?;
    let request = FakeRequest {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body,
    };
    records.lock().unwrap().push(request.clone());
    let response = handler(&request);

    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let head_only = request.method == "HEAD";
    match &response.body {
        FakeBody::Bytes(bytes) => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
        FakeBody::Stream { size, declared, .. } => {
            if *declared {
                head.push_str(&format!("Content-Length: {size}\r\n"));
            } else if !head_only {
                head.push_str("Transfer-Encoding: chunked\r\n");
            }
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    writer.write_all(head.as_bytes())?;
    if !head_only {
        match &response.body {
            FakeBody::Bytes(bytes) => writer.write_all(bytes)?,
            FakeBody::Stream {
                size,
                fill,
                declared,
            } => {
                let piece = vec![*fill; 64 << 10];
                let mut left = *size;
                while left > 0 {
                    let n = left.min(piece.len() as u64) as usize;
                    if *declared {
                        writer.write_all(&piece[..n])?;
                    } else {
                        writer.write_all(format!("{n:x}\r\n").as_bytes())?;
                        writer.write_all(&piece[..n])?;
                        writer.write_all(b"\r\n")?;
                    }
                    left -= n as u64;
                }
                if !*declared {
                    writer.write_all(b"0\r\n\r\n")?;
                }
            }
        }
    }
    writer.flush()?;
    let _ = writer.shutdown(Shutdown::Write);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Registry pieces
// ---------------------------------------------------------------------------------------

/// A tiny OCI image manifest a fake registry can serve (nothing reads its blobs), with its
/// digest.
pub fn tiny_manifest() -> (Vec<u8>, String) {
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", "0".repeat(64)),
            "size": 2
        },
        "layers": []
    }))
    .unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    (bytes, digest)
}

/// The answer to a manifest request for [`tiny_manifest`] (HEAD and GET alike).
pub fn tiny_manifest_response() -> FakeResponse {
    let (bytes, digest) = tiny_manifest();
    FakeResponse::bytes(200, "application/vnd.oci.image.manifest.v1+json", bytes)
        .with_header("Docker-Content-Digest", &digest)
}

/// A 401 asking for Basic credentials.
pub fn basic_challenge() -> FakeResponse {
    FakeResponse::json(
        401,
        &serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}),
    )
    .with_header("WWW-Authenticate", r#"Basic realm="fake""#)
}

/// A 401 sending the client to the token service at `realm`.
pub fn bearer_challenge(realm: &str) -> FakeResponse {
    FakeResponse::json(
        401,
        &serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}),
    )
    .with_header(
        "WWW-Authenticate",
        &format!(r#"Bearer realm="{realm}",service="fake""#),
    )
}

/// A registry-style JSON error answer.
pub fn registry_error(status: u16, code: &str, message: &str) -> FakeResponse {
    FakeResponse::json(
        status,
        &serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]}),
    )
}

/// What a plain registry serving [`tiny_manifest`] as `app:v1` answers: the manifest by tag
/// and digest, a tag list, `404 NOT_FOUND` for anything else.
pub fn tiny_image_answer(req: &FakeRequest) -> FakeResponse {
    let path = req.path.split('?').next().unwrap_or_default();
    let (_, digest) = tiny_manifest();
    if path == "/v2/" {
        FakeResponse::json(200, &serde_json::json!({}))
    } else if path.ends_with("/manifests/v1") || path.ends_with(&format!("/manifests/{digest}")) {
        tiny_manifest_response()
    } else if path.ends_with("/tags/list") {
        FakeResponse::json(200, &serde_json::json!({"name": "app", "tags": ["v1"]}))
    } else {
        registry_error(404, "NOT_FOUND", "no such thing")
    }
}

// ---------------------------------------------------------------------------------------
// Token services
// ---------------------------------------------------------------------------------------

impl FakeRequest {
    /// The fields of an `application/x-www-form-urlencoded` body (empty for another body).
    pub fn form(&self) -> std::collections::HashMap<String, String> {
        let is_form = self
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Default::default();
        }
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

/// A token service that takes nothing but an OAuth2 refresh-token grant (distribution's
/// token specification, `POST` of a form) for `refresh_token` and service `fake`, and answers
/// `access_token`. A `GET` (the password flow), Basic credentials, another grant or another
/// refresh token get `401 invalid_grant`.
pub fn refresh_token_grant(
    refresh_token: &'static str,
    access_token: &'static str,
) -> impl Fn(&FakeRequest) -> FakeResponse + Send + Sync + 'static {
    move |req| {
        let form = req.form();
        let field = |name: &str| form.get(name).map(String::as_str);
        let accepted = req.method == "POST"
            && req.authorization().is_none()
            && field("grant_type") == Some("refresh_token")
            && field("refresh_token") == Some(refresh_token)
            && field("service") == Some("fake")
            && field("client_id").is_some_and(|c| !c.is_empty())
            && field("scope").is_some_and(|s| s.starts_with("repository:"));
        if !accepted {
            return FakeResponse::json(
                401,
                &serde_json::json!({"error": "invalid_grant", "error_description": "only a refresh token grant is accepted"}),
            );
        }
        FakeResponse::json(
            200,
            &serde_json::json!({
                "access_token": access_token,
                "expires_in": 300,
                "scope": field("scope"),
            }),
        )
    }
}

/// A registry that answers `answer` only to requests carrying `Bearer <access_token>`, and a
/// challenge sending the client to the token service at `realm` to everything else.
pub fn bearer_protected(
    access_token: &'static str,
    realm: String,
    answer: impl Fn(&FakeRequest) -> FakeResponse + Send + Sync + 'static,
) -> impl Fn(&FakeRequest) -> FakeResponse + Send + Sync + 'static {
    move |req| {
        if req.authorization() == Some(&format!("Bearer {access_token}")) {
            answer(req)
        } else {
            bearer_challenge(&realm)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Amazon ECR's answers
// ---------------------------------------------------------------------------------------

/// The AWS account ECR names in its answers.
pub const ECR_ACCOUNT: &str = "123456789012";

/// ECR's answer to every request for a repository that does not exist: `404 NAME_UNKNOWN`
/// in its own words (as `docker push` shows them: "name unknown: The repository with name
/// 'app' does not exist in the registry with id '…'").
pub fn ecr_missing_repository(name: &str) -> FakeResponse {
    registry_error(
        404,
        "NAME_UNKNOWN",
        &format!(
            "The repository with name '{name}' does not exist in the registry with id '{ECR_ACCOUNT}'"
        ),
    )
}

/// ECR's words refusing to move `tag` of an IMMUTABLE repository (`400 TAG_INVALID`, which
/// `docker push` shows as "tag invalid: The image tag 'v1' already exists in the 'app'
/// repository and cannot be overwritten because the repository is immutable.").
pub fn ecr_immutable_tag_message(tag: &str, repository: &str) -> String {
    format!(
        "The image tag '{tag}' already exists in the '{repository}' repository and cannot be \
         overwritten because the repository is immutable."
    )
}

/// A proxy rule making the registry behind it a repository with IMMUTABLE tags, as ECR
/// has them: a tag, once written through the proxy, cannot be put again with other bytes
/// (`400 TAG_INVALID` in ECR's words); writes by digest and new tags pass.
pub fn ecr_immutable_tags() -> super::proxy::ManifestRule {
    let written: Mutex<std::collections::HashMap<String, String>> = Mutex::default();
    Box::new(move |req, body| {
        let path = req.path.split('?').next().unwrap_or_default();
        let (repository, reference) = path.strip_prefix("/v2/")?.split_once("/manifests/")?;
        if reference.starts_with("sha256:") {
            return None;
        }
        let digest = hex::encode(Sha256::digest(body));
        let mut written = written.lock().unwrap();
        match written.get(path) {
            Some(before) if *before != digest => Some(super::proxy::Action::registry_error(
                400,
                "TAG_INVALID",
                &ecr_immutable_tag_message(reference, repository),
            )),
            _ => {
                written.insert(path.to_string(), digest);
                None
            }
        }
    })
}
