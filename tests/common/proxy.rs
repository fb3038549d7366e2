//! A fault-injecting HTTP/1.1 proxy for end-to-end tests: a std-thread TCP proxy on a free
//! loopback port in front of one upstream (usually a [`super::Registry`]).
//!
//! Every request is parsed (request line, headers, a `Content-Length` or chunked body), shown
//! to a [`Policy`] with its sequence number, and then forwarded, refused or dropped as the
//! policy says. One request per connection: the proxy sends `Connection: close` upstream and
//! to the client, so a client that wants keep-alive simply opens a new connection.
//!
//! The `Host` header is passed through unchanged, so a registry builds its upload `Location`
//! URLs with the proxy's address and uploads keep going through the proxy.
//!
//! Faults ([`Fault`]) are injected *before* anything reaches the upstream (except
//! [`Fault::Slow`], which forwards and then dribbles the response), so an injected fault never
//! has a side effect the client cannot see.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// One parsed request, as the policy sees it.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// 0 for the first HTTP request the proxy parsed, then 1, 2, … (in arrival order).
    pub seq: u64,
    pub method: String,
    /// Request target as sent: path plus query.
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl RequestInfo {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Content-Type` without parameters.
    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
            .map(|v| v.split(';').next().unwrap_or(v).trim())
    }

    /// The declared body size (`Content-Length`), if any.
    pub fn content_length(&self) -> Option<u64> {
        content_length(&self.headers)
    }
}

/// What the proxy does with a request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Pass it to the upstream and the answer back.
    Forward,
    /// Close the connection without an answer, the request body unread (the kernel then
    /// answers a client still sending with RST).
    Reset,
    /// Answer this instead of the upstream (the request body is read and dropped first, so
    /// the client sees the answer rather than a reset).
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Forward, then deliver the answer late and in small pieces.
    Slow,
    /// Forward, then cut the answer's body off halfway (by its `Content-Length`) and close
    /// the connection: a download that breaks mid-transfer.
    Truncate,
    /// Forward, and add these headers to the upstream's answer (a registry announcing
    /// something the test registry does not, e.g. `OCI-Chunk-Min-Length`).
    ForwardAddingHeaders(Vec<(String, String)>),
    /// Forward, and once the upstream has answered, run `hook` (a second writer writing, a
    /// stale write replayed), wait `delay`, and only then answer: the upstream's answer, or
    /// `answer` instead (a 503 for a write that did land). The client hears nothing before.
    Intercept {
        hook: Hook,
        delay: Duration,
        answer: Option<Box<Action>>,
    },
}

/// What a test does while the proxy holds an answer back.
#[derive(Clone)]
pub struct Hook(pub Arc<dyn Fn() + Send + Sync>);

impl Hook {
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Hook {
        Hook(Arc::new(f))
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

impl Action {
    /// A registry-style JSON error answer: `{"errors":[{"code":…,"message":…}]}`.
    pub fn registry_error(status: u16, code: &str, message: &str) -> Action {
        let body = serde_json::json!({
            "errors": [{ "code": code, "message": message, "detail": null }]
        });
        Action::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    fn name(&self) -> String {
        match self {
            Action::Forward => "forward".into(),
            Action::Reset => "reset".into(),
            Action::Respond { status, .. } => status.to_string(),
            Action::Slow => "slow".into(),
            Action::Truncate => "truncate".into(),
            Action::ForwardAddingHeaders(_) => "forward+headers".into(),
            Action::Intercept { answer: None, .. } => "intercept".into(),
            Action::Intercept {
                answer: Some(answer),
                ..
            } => format!("intercept+{}", answer.name()),
        }
    }
}

/// The transient faults a real registry or the network in front of it produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Connection closed without an answer.
    Reset,
    /// 503 Service Unavailable.
    Unavailable,
    /// 429 Too Many Requests with `Retry-After: 1`.
    TooManyRequests,
    /// The answer arrives late and slowly.
    Slow,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::Reset,
        Fault::Unavailable,
        Fault::TooManyRequests,
        Fault::Slow,
    ];

    pub fn action(self) -> Action {
        match self {
            Fault::Reset => Action::Reset,
            Fault::Unavailable => {
                Action::registry_error(503, "UNAVAILABLE", "injected fault: service unavailable")
            }
            Fault::TooManyRequests => match Action::registry_error(
                429,
                "TOOMANYREQUESTS",
                "injected fault: too many requests",
            ) {
                Action::Respond {
                    status,
                    mut headers,
                    body,
                } => {
                    headers.push(("Retry-After".into(), "1".into()));
                    Action::Respond {
                        status,
                        headers,
                        body,
                    }
                }
                other => other,
            },
            Fault::Slow => Action::Slow,
        }
    }
}

/// Decides the fate of each request.
pub type Policy = Box<dyn Fn(&RequestInfo) -> Action + Send + Sync>;

/// Decides the fate of a manifest PUT the [`Policy`] forwarded, seeing its whole body:
/// `Some(action)` answers instead of the upstream, `None` forwards. Manifests are small, so
/// their bodies are read into memory first; no other request is buffered.
pub type ManifestRule = Box<dyn Fn(&RequestInfo, &[u8]) -> Option<Action> + Send + Sync>;

/// A registry that refuses OCI 1.1 referrer manifests, as some do for some subjects: every
/// manifest PUT whose JSON has a `subject` is refused with `status` (400 answers
/// `MANIFEST_INVALID`, anything else `UNSUPPORTED`); other manifests pass.
pub fn refuse_manifests_with_subject(status: u16) -> ManifestRule {
    Box::new(move |_req, body| {
        let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
        doc.get("subject")?;
        let code = if status == 400 {
            "MANIFEST_INVALID"
        } else {
            "UNSUPPORTED"
        };
        Some(Action::registry_error(
            status,
            code,
            "injected fault: manifests with a subject are not supported",
        ))
    })
}

/// Forwards everything.
pub fn forward_all() -> Policy {
    Box::new(|_| Action::Forward)
}

/// Every `n`-th request (seq `n-1`, `2n-1`, …; never seq 0, the client's first request)
/// gets the next fault of `faults`, round-robin; the rest are forwarded. With `n = 5`, 20% of
/// requests fail. Deterministic in the arrival order.
pub fn every_nth(n: u64, faults: &[Fault]) -> Policy {
    assert!(n >= 2 && !faults.is_empty());
    let faults = faults.to_vec();
    Box::new(move |req| {
        if req.seq == 0 || (req.seq + 1) % n != 0 {
            return Action::Forward;
        }
        let k = ((req.seq + 1) / n - 1) as usize;
        faults[k % faults.len()].action()
    })
}

/// The first `n` requests are forwarded; every later one is answered 503.
pub fn fail_after(n: u64) -> Policy {
    Box::new(move |req| {
        if req.seq < n {
            Action::Forward
        } else {
            Fault::Unavailable.action()
        }
    })
}

/// A body size limit in front of the registry (nginx's `client_max_body_size`, say): every
/// request declaring a `Content-Length` above `limit` is answered 413 Payload Too Large
/// (after its body is read); the rest are forwarded.
pub fn refuse_bodies_over(limit: u64) -> Policy {
    Box::new(move |req| match req.content_length() {
        Some(n) if n > limit => payload_too_large(),
        _ => Action::Forward,
    })
}

/// A 413 answer as nginx gives it: an HTML body, no registry error JSON.
pub fn payload_too_large() -> Action {
    Action::Respond {
        status: 413,
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: b"<html><head><title>413 Request Entity Too Large</title></head></html>".to_vec(),
    }
}

/// Tuning knobs of a proxy.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Forward request bodies to the upstream at most this fast, per connection.
    pub upload_bytes_per_second: Option<u64>,
}

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// `forward`, `forward+headers`, `reset`, `slow`, `truncate`, or the status answered by
    /// the proxy itself.
    pub action: String,
    /// The request's headers, as received.
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The declared body size (`Content-Length`), if any.
    pub fn content_length(&self) -> Option<u64> {
        content_length(&self.headers)
    }
}

struct Shared {
    upstream: String,
    policy: Policy,
    manifest_rule: Option<ManifestRule>,
    options: ProxyOptions,
    seq: AtomicU64,
    stop: AtomicBool,
    records: Mutex<Vec<Record>>,
    /// Request-body bytes written to the upstream so far.
    body_bytes_forwarded: AtomicU64,
}

/// A running proxy; dropping it stops accepting connections.
pub struct Proxy {
    addr: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

const IO_TIMEOUT: Duration = Duration::from_secs(60);

impl Proxy {
    /// Starts a proxy in front of `upstream` ("host:port") with default options.
    pub fn start(upstream: &str, policy: Policy) -> Proxy {
        Self::start_with(upstream, ProxyOptions::default(), policy)
    }

    pub fn start_with(upstream: &str, options: ProxyOptions, policy: Policy) -> Proxy {
        Self::start_inner(upstream, options, policy, None)
    }

    /// Starts a proxy whose manifest PUTs, once `policy` forwards them, also go through
    /// `rule` (see [`ManifestRule`]).
    pub fn start_with_manifest_rule(upstream: &str, policy: Policy, rule: ManifestRule) -> Proxy {
        Self::start_inner(upstream, ProxyOptions::default(), policy, Some(rule))
    }

    fn start_inner(
        upstream: &str,
        options: ProxyOptions,
        policy: Policy,
        manifest_rule: Option<ManifestRule>,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            policy,
            manifest_rule,
            options,
            seq: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            records: Mutex::new(Vec::new()),
            body_bytes_forwarded: AtomicU64::new(0),
        });
        let accept_shared = shared.clone();
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = accept_shared.clone();
                thread::spawn(move || {
                    // Errors only end this connection; the client sees them as resets.
                    let _ = handle(conn, &shared);
                });
            }
        });
        Proxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `127.0.0.1:PORT/name`: a repository reached through the proxy.
    pub fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// Every request so far, in the order their fate was decided.
    pub fn records(&self) -> Vec<Record> {
        self.shared.records.lock().expect("records").clone()
    }

    /// How many requests got `action` (see [`Record::action`]).
    pub fn count(&self, action: &str) -> usize {
        self.records().iter().filter(|r| r.action == action).count()
    }

    /// Request-body bytes forwarded to the upstream so far.
    pub fn body_bytes_forwarded(&self) -> u64 {
        self.shared.body_bytes_forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(
            &self.addr.parse().expect("proxy address"),
            Duration::from_secs(1),
        );
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one CRLF (or LF) terminated line, without the terminator; `None` at EOF.
pub(super) fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if r.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| invalid("non-UTF-8 header line"))
}

/// Reads header lines up to the blank line.
pub(super) fn read_headers(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| invalid("EOF in headers"))?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
}

pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn content_length(headers: &[(String, String)]) -> Option<u64> {
    header(headers, "Content-Length").and_then(|v| v.trim().parse().ok())
}

/// Hop-by-hop headers the proxy replaces with its own `Connection: close`.
fn is_hop_by_hop(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

pub(super) enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

pub(super) fn framing(headers: &[(String, String)]) -> io::Result<BodyFraming> {
    if header(headers, "Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        return Ok(BodyFraming::Chunked);
    }
    match header(headers, "Content-Length") {
        Some(len) => Ok(BodyFraming::Length(
            len.parse().map_err(|_| invalid("bad Content-Length"))?,
        )),
        None => Ok(BodyFraming::None),
    }
}

/// Copies exactly `n` bytes, at most `rate` bytes per second when given; adds what it wrote
/// to `counter`.
fn copy_exact(
    r: &mut impl Read,
    w: &mut impl Write,
    n: u64,
    rate: Option<u64>,
    counter: Option<&AtomicU64>,
) -> io::Result<()> {
    let start = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    while done < n {
        let want = (n - done).min(buf.len() as u64) as usize;
        let got = r.read(&mut buf[..want])?;
        if got == 0 {
            return Err(invalid("EOF in body"));
        }
        w.write_all(&buf[..got])?;
        done += got as u64;
        if let Some(c) = counter {
            c.fetch_add(got as u64, Ordering::SeqCst);
        }
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(done as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
    Ok(())
}

/// Copies (or, with `w = None`, drains) a request body in its original framing.
fn copy_body(
    r: &mut impl BufRead,
    mut w: Option<&mut TcpStream>,
    framing: &BodyFraming,
    rate: Option<u64>,
    counter: Option<&AtomicU64>,
) -> io::Result<()> {
    match framing {
        BodyFraming::None => Ok(()),
        BodyFraming::Length(n) => match w {
            Some(w) => copy_exact(r, w, *n, rate, counter),
            None => copy_exact(r, &mut io::sink(), *n, None, None),
        },
        BodyFraming::Chunked => loop {
            let line = read_line(r)?.ok_or_else(|| invalid("EOF in chunk size"))?;
            if let Some(w) = w.as_deref_mut() {
                w.write_all(format!("{line}\r\n").as_bytes())?;
            }
            let size_hex = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size_hex, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers up to the blank line.
                loop {
                    let t = read_line(r)?.ok_or_else(|| invalid("EOF in trailers"))?;
                    if let Some(w) = w.as_deref_mut() {
                        w.write_all(format!("{t}\r\n").as_bytes())?;
                    }
                    if t.is_empty() {
                        return Ok(());
                    }
                }
            }
            match w.as_deref_mut() {
                Some(w) => copy_exact(r, w, size + 2, rate, counter)?,
                None => copy_exact(r, &mut io::sink(), size + 2, None, None)?,
            }
        },
    }
}

/// Reads a whole request body (either framing) into `out`, de-chunked.
pub(super) fn copy_body_into(
    r: &mut impl BufRead,
    out: &mut Vec<u8>,
    framing: &BodyFraming,
) -> io::Result<()> {
    match framing {
        BodyFraming::None => Ok(()),
        BodyFraming::Length(n) => copy_exact(r, out, *n, None, None),
        BodyFraming::Chunked => loop {
            let line = read_line(r)?.ok_or_else(|| invalid("EOF in chunk size"))?;
            let size_hex = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size_hex, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                while !read_line(r)?
                    .ok_or_else(|| invalid("EOF in trailers"))?
                    .is_empty()
                {}
                return Ok(());
            }
            copy_exact(r, out, size, None, None)?;
            let _crlf = read_line(r)?;
        },
    }
}

pub(super) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Injected",
    }
}

/// Writes a whole answer of the proxy's own and ends the connection.
fn write_answer(
    client_w: &mut TcpStream,
    method: &str,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    client_w.write_all(head.as_bytes())?;
    if method != "HEAD" {
        client_w.write_all(body)?;
    }
    client_w.flush()?;
    let _ = client_w.shutdown(Shutdown::Write);
    Ok(())
}

/// A client's request on its way to the upstream.
struct Forwarded<'a> {
    method: &'a str,
    path: &'a str,
    version: &'a str,
    headers: &'a [(String, String)],
    /// The body, when it was read already (a manifest a rule looked at).
    buffered: Option<&'a [u8]>,
}

impl Forwarded<'_> {
    /// Sends the request to the upstream (its body from `buffered` or copied from the client
    /// at `rate`) and returns the connection, to read the answer from.
    fn send(
        &self,
        shared: &Shared,
        client_r: &mut BufReader<TcpStream>,
        body: &BodyFraming,
        rate: Option<u64>,
    ) -> io::Result<TcpStream> {
        let mut upstream = TcpStream::connect(&shared.upstream)?;
        upstream.set_read_timeout(Some(IO_TIMEOUT))?;
        upstream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut head = format!("{} {} {}\r\n", self.method, self.path, self.version);
        for (k, v) in self.headers.iter().filter(|(k, _)| !is_hop_by_hop(k)) {
            // A buffered body is forwarded with a Content-Length of its own.
            let framing_header = k.eq_ignore_ascii_case("Content-Length")
                || k.eq_ignore_ascii_case("Transfer-Encoding");
            if self.buffered.is_some() && framing_header {
                continue;
            }
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(bytes) = self.buffered {
            head.push_str(&format!("Content-Length: {}\r\n", bytes.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        upstream.write_all(head.as_bytes())?;
        match self.buffered {
            Some(bytes) => {
                upstream.write_all(bytes)?;
                shared
                    .body_bytes_forwarded
                    .fetch_add(bytes.len() as u64, Ordering::SeqCst);
            }
            None => copy_body(
                client_r,
                Some(&mut upstream),
                body,
                rate,
                Some(&shared.body_bytes_forwarded),
            )?,
        }
        upstream.flush()?;
        Ok(upstream)
    }
}

fn handle(client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut client_w = client.try_clone()?;
    let mut client_r = BufReader::new(client);

    // Anything that does not start like an HTTP method (a TLS ClientHello probing for https,
    // say) is dropped at once, without taking a sequence number.
    let first = client_r.fill_buf()?;
    if first.is_empty() || !first[0].is_ascii_uppercase() {
        return Ok(());
    }
    let request_line = read_line(&mut client_r)?.ok_or_else(|| invalid("EOF"))?;
    let mut parts = request_line.splitn(3, ' ');
    let (method, path, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(v)) if v.starts_with("HTTP/") => (m, p, v),
        _ => return Err(invalid(format!("bad request line {request_line:?}"))),
    };
    let headers = read_headers(&mut client_r)?;
    let body = framing(&headers)?;

    let info = RequestInfo {
        seq: shared.seq.fetch_add(1, Ordering::SeqCst),
        method: method.to_string(),
        path: path.to_string(),
        headers: headers.clone(),
    };
    let mut action = (shared.policy)(&info);
    // A manifest PUT the policy forwards may still be refused by the manifest rule, which
    // needs the body: read it now and forward it from memory.
    let mut buffered: Option<Vec<u8>> = None;
    if let (Action::Forward, Some(rule)) = (&action, &shared.manifest_rule) {
        if method == "PUT" && path.contains("/manifests/") {
            let mut bytes = Vec::new();
            copy_body_into(&mut client_r, &mut bytes, &body)?;
            if let Some(answer) = rule(&info, &bytes) {
                action = answer;
            }
            buffered = Some(bytes);
        }
    }
    shared.records.lock().expect("records").push(Record {
        seq: info.seq,
        method: info.method.clone(),
        path: info.path.clone(),
        action: action.name(),
        headers: info.headers.clone(),
    });

    let request = Forwarded {
        method,
        path,
        version,
        headers: &headers,
        buffered: buffered.as_deref(),
    };
    match action {
        Action::Reset => {
            // Closing the socket with body bytes unread makes the kernel send RST.
            drop(client_r);
            drop(client_w);
            Ok(())
        }
        Action::Respond {
            status,
            headers: extra,
            body: answer,
        } => {
            if buffered.is_none() {
                copy_body(&mut client_r, None, &body, None, None)?;
            }
            write_answer(&mut client_w, method, status, &extra, &answer)
        }
        Action::Intercept {
            hook,
            delay,
            answer,
        } => {
            let mut upstream = request.send(shared, &mut client_r, &body, None)?;
            // The upstream closes after its answer: all of it, before anything goes on.
            let mut answered = Vec::new();
            upstream.read_to_end(&mut answered)?;
            (hook.0)();
            thread::sleep(delay);
            match answer.map(|a| *a) {
                Some(Action::Respond {
                    status,
                    headers: extra,
                    body: text,
                }) => write_answer(&mut client_w, method, status, &extra, &text),
                Some(other) => panic!("an intercepted request can only be answered, not {other:?}"),
                None => {
                    client_w.write_all(&answered)?;
                    client_w.flush()?;
                    let _ = client_w.shutdown(Shutdown::Write);
                    Ok(())
                }
            }
        }
        Action::Forward | Action::Slow | Action::Truncate | Action::ForwardAddingHeaders(_) => {
            let slow = matches!(action, Action::Slow);
            let added = match &action {
                Action::ForwardAddingHeaders(added) => added.clone(),
                _ => Vec::new(),
            };
            let upstream = request.send(
                shared,
                &mut client_r,
                &body,
                shared.options.upload_bytes_per_second,
            )?;
            let mut up_r = BufReader::new(upstream);
            let status_line = read_line(&mut up_r)?.ok_or_else(|| invalid("upstream EOF"))?;
            let resp_headers = read_headers(&mut up_r)?;
            let mut resp_head = format!("{status_line}\r\n");
            for (k, v) in resp_headers.iter().filter(|(k, _)| !is_hop_by_hop(k)) {
                resp_head.push_str(&format!("{k}: {v}\r\n"));
            }
            for (k, v) in &added {
                resp_head.push_str(&format!("{k}: {v}\r\n"));
            }
            resp_head.push_str("Connection: close\r\n\r\n");
            if slow {
                thread::sleep(Duration::from_millis(300));
                for piece in resp_head.as_bytes().chunks(16) {
                    client_w.write_all(piece)?;
                    client_w.flush()?;
                    thread::sleep(Duration::from_millis(5));
                }
            } else {
                client_w.write_all(resp_head.as_bytes())?;
            }
            // The upstream closes after the response (we asked it to): copy to EOF, or to the
            // cut-off point of a truncated answer. The first 16 KiB of a slow answer's body
            // trickle out 1 KiB at a time.
            let cut_off = match action {
                Action::Truncate => header(&resp_headers, "Content-Length")
                    .and_then(|l| l.parse::<usize>().ok())
                    .map(|l| l / 2),
                _ => None,
            };
            let mut buf = vec![0u8; 64 * 1024];
            let mut sent = 0usize;
            loop {
                let mut limit = if slow && sent < 16 * 1024 {
                    1024
                } else {
                    buf.len()
                };
                if let Some(cut) = cut_off {
                    limit = limit.min(cut - sent);
                    if limit == 0 {
                        // Close with the rest unsent: the client sees a short body.
                        client_w.flush()?;
                        return Ok(());
                    }
                }
                let n = up_r.read(&mut buf[..limit])?;
                if n == 0 {
                    break;
                }
                client_w.write_all(&buf[..n])?;
                sent += n;
                if slow && sent <= 16 * 1024 {
                    client_w.flush()?;
                    thread::sleep(Duration::from_millis(20));
                }
            }
            client_w.flush()?;
            let _ = client_w.shutdown(Shutdown::Write);
            Ok(())
        }
    }
}
