//! A TUF repository on loopback for the trust-root tests: python-tuf builds and changes it
//! (`tests/tuf-repo.py`), [`FileServer`] serves it and can be told to misbehave per path.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::{run_ok, tempdir, TempDir};

/// A TUF repository in a temporary directory, laid out as Sigstore's is served: metadata at
/// the top (consistent snapshots), targets under `targets/` as `HASH.NAME`.
pub struct TufRepo {
    dir: TempDir,
}

fn generator() -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tuf-repo.py"));
    cmd
}

fn target_args(cmd: &mut Command, targets: &[(&str, &Path)]) {
    for (name, file) in targets {
        cmd.arg("--target")
            .arg(format!("{name}={}", file.display()));
    }
}

impl TufRepo {
    /// Root version 1 and the first targets, snapshot and timestamp (expiring in a week).
    pub fn init(targets: &[(&str, &Path)]) -> TufRepo {
        let dir = tempdir();
        let mut cmd = generator();
        cmd.arg("init").arg(dir.path());
        target_args(&mut cmd, targets);
        run_ok(&mut cmd);
        TufRepo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The root metadata clients start from (`--tuf-root`).
    pub fn initial_root(&self) -> PathBuf {
        self.dir.path().join("1.root.json")
    }

    /// New targets (when given), snapshot and timestamp; the timestamp expires
    /// `timestamp_expires` seconds from now (negative: already expired).
    pub fn publish(&self, targets: &[(&str, &Path)], timestamp_expires: i64) {
        let mut cmd = generator();
        cmd.arg("publish")
            .arg(self.dir.path())
            .arg(format!("--timestamp-expires={timestamp_expires}"));
        target_args(&mut cmd, targets);
        run_ok(&mut cmd);
    }

    /// Root version N+1 with a new root key, signed by the old key and the new one.
    pub fn rotate_root(&self) {
        run_ok(generator().arg("rotate-root").arg(self.dir.path()));
    }

    /// The served file of target `name` (`targets/HASH.NAME`).
    pub fn target_file(&self, name: &str) -> PathBuf {
        let suffix = format!(".{name}");
        std::fs::read_dir(self.dir.path().join("targets"))
            .expect("targets directory")
            .map(|e| e.expect("directory entry").path())
            .find(|p| p.to_string_lossy().ends_with(&suffix))
            .unwrap_or_else(|| panic!("no target {name}"))
    }
}

/// What [`FileServer`] answers for one path instead of the file.
#[derive(Clone, Debug)]
pub enum Served {
    Bytes(Vec<u8>),
    /// 200 with no length and no end: bytes until the client hangs up (or 1 GiB).
    Endless,
}

/// A static HTTP/1.1 file server on a free loopback port, one thread per connection, one
/// request per connection. Dropping it closes the port (the server is then down).
pub struct FileServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    overrides: Arc<Mutex<HashMap<String, Served>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FileServer {
    pub fn start(root: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let overrides: Arc<Mutex<HashMap<String, Served>>> = Arc::default();
        let acceptor = {
            let (root, stop, requests, overrides) = (
                root.to_path_buf(),
                stop.clone(),
                requests.clone(),
                overrides.clone(),
            );
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (root, requests, overrides) =
                        (root.clone(), requests.clone(), overrides.clone());
                    thread::spawn(move || {
                        let _ = serve(stream, &root, &requests, &overrides);
                    });
                }
            })
        };
        FileServer {
            addr,
            stop,
            requests,
            overrides,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Answer `path` (e.g. `/timestamp.json`) with `what` from now on.
    pub fn serve(&self, path: &str, what: Served) {
        self.overrides
            .lock()
            .unwrap()
            .insert(path.to_string(), what);
    }
}

impl FileServer {
    /// Answer `path` from the directory again.
    pub fn forget(&self, path: &str) {
        self.overrides.lock().unwrap().remove(path);
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    root: &Path,
    requests: &AtomicUsize,
    overrides: &Mutex<HashMap<String, Served>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    if request_line.is_empty() {
        // The wake-up connection of Drop sends nothing: not a request.
        return Ok(());
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    requests.fetch_add(1, Ordering::SeqCst);
    let mut out = stream;
    let overridden = overrides.lock().unwrap().get(&path).cloned();
    match overridden {
        Some(Served::Bytes(body)) => respond(&mut out, "200 OK", &body),
        Some(Served::Endless) => {
            out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..(1 << 14) {
                out.write_all(&chunk)?;
            }
            Ok(())
        }
        None => match file_for(root, &path).and_then(|p| std::fs::read(p).ok()) {
            Some(body) => respond(&mut out, "200 OK", &body),
            None => respond(&mut out, "404 Not Found", b"not found\n"),
        },
    }
}

/// The file under `root` for a request path; `None` for anything that would leave `root`.
fn file_for(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(root.join(relative))
}

fn respond(out: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body)?;
    out.flush()
}
