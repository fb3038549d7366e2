//! Running wharf against hostile input: a bounded run that measures what the process cost
//! (wall time, peak memory) and the checks every refusal must pass.
//!
//! A refusal is one `wharf: error:` line naming what was wrong and where, a non-zero exit,
//! an end well inside the time limit and peak memory under [`MEMORY_LIMIT_KIB`], whatever
//! the peer sent.

use super::error_line;
use std::io::Read;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Peak resident memory a wharf process may reach on hostile input.
pub const MEMORY_LIMIT_KIB: u64 = 256 * 1024;

/// What a bounded run of a command cost and produced.
#[derive(Debug)]
pub struct BoundedRun {
    pub output: Output,
    /// Peak resident set size of the process, from the kernel's own accounting.
    pub peak_rss_kib: u64,
    pub elapsed: Duration,
    /// The process was still running at the limit and was killed.
    pub killed: bool,
}

impl BoundedRun {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
}

/// Runs `cmd` (stdin closed), killing it at `limit`, and measures its peak memory.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> BoundedRun {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn the command under test");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });

    // The watchdog may kill only while the process is not yet reaped: the main thread waits
    // for the exit without reaping (WNOWAIT), marks it exited under the lock, then reaps. A
    // pid that could be reused is therefore never signalled.
    let exited = Arc::new(Mutex::new(false));
    let killed = Arc::new(Mutex::new(false));
    let watchdog = {
        let (exited, killed) = (exited.clone(), killed.clone());
        thread::spawn(move || loop {
            if *exited.lock().unwrap() {
                return;
            }
            if start.elapsed() >= limit {
                let done = exited.lock().unwrap();
                if !*done {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    *killed.lock().unwrap() = true;
                }
                return;
            }
            thread::sleep(Duration::from_millis(10));
        })
    };

    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        loop {
            let rc = libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            );
            if rc == 0 {
                break;
            }
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EINTR),
                "waitid"
            );
        }
    }
    *exited.lock().unwrap() = true;
    let elapsed = start.elapsed();
    let mut status: libc::c_int = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4");
    watchdog.join().unwrap();
    let output = Output {
        status: <ExitStatus as std::os::unix::process::ExitStatusExt>::from_raw(status),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    // The Child handle must not wait again: the process is already reaped.
    std::mem::forget(child);
    let killed = *killed.lock().unwrap();
    BoundedRun {
        output,
        peak_rss_kib: usage.ru_maxrss as u64,
        elapsed,
        killed,
    }
}

/// Asserts a hostile case was refused properly: ended by itself inside the limit, non-zero
/// exit, one error line containing every one of `needles`, no control characters from the
/// peer in it, and peak memory under [`MEMORY_LIMIT_KIB`]. Returns the error line.
pub fn assert_refused(run: &BoundedRun, needles: &[&str]) -> String {
    assert!(
        !run.killed,
        "still running after {:?} (killed); stderr so far:\n{}",
        run.elapsed,
        run.stderr()
    );
    let line = error_line(&run.output);
    for needle in needles {
        assert!(
            line.contains(needle),
            "the error line does not name {needle:?}: {line}"
        );
    }
    assert!(
        !line.chars().any(|c| c.is_control() && c != '\t'),
        "control characters in the error line: {line:?}"
    );
    assert!(
        run.peak_rss_kib < MEMORY_LIMIT_KIB,
        "peak memory {} MiB, limit {} MiB",
        run.peak_rss_kib / 1024,
        MEMORY_LIMIT_KIB / 1024
    );
    line
}

/// What is under `dir`: every path (links not followed) with its kind and size. Comparing
/// two of these shows whether a run wrote, removed or replaced anything.
pub fn file_tree(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    let mut tree = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(current) = todo.pop() {
        for entry in std::fs::read_dir(&current).expect("read a directory under test") {
            let path = entry.expect("directory entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let kind = if meta.is_dir() {
                todo.push(path.clone());
                "dir".to_string()
            } else if meta.file_type().is_symlink() {
                format!("link to {}", std::fs::read_link(&path).unwrap().display())
            } else {
                format!("{:?} of {} bytes", meta.file_type(), meta.len())
            };
            tree.insert(path, kind);
        }
    }
    tree
}

/// One tar entry (ustar header, data, padding) whose fields are written as given: the tar
/// crate's own builder refuses the paths and kinds hostile archives are made of.
pub fn tar_entry(name: &str, kind: tar::EntryType, data: &[u8], link: &str) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    {
        let raw = header.as_ustar_mut().expect("ustar header");
        raw.name.fill(0);
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        raw.linkname.fill(0);
        raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_size(data.len() as u64);
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// `archive` (a whole tar file) with `entries` added at its end, before a new end marker.
pub fn tar_with(archive: &[u8], entries: &[Vec<u8>]) -> Vec<u8> {
    // Drop the trailing zero blocks (the end marker and any padding of the last record).
    let mut end = archive.len();
    while end >= 512 && archive[end - 512..end].iter().all(|&b| b == 0) {
        end -= 512;
    }
    let mut out = archive[..end].to_vec();
    for entry in entries {
        out.extend_from_slice(entry);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}
