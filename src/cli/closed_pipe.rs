//! Output into a closed pipe (`wharf verify ... | head -c1`, `wharf --help | head -1`) ends
//! wharf the way it ends coreutils and Go programs: killed by SIGPIPE, silently, so shells
//! report status 141 and `set -o pipefail` scripts learn that output was cut short.
//!
//! Rust starts programs with SIGPIPE ignored, so such a write fails with EPIPE and `println!`
//! panics. wharf keeps the signal ignored for every other descriptor (a credential helper that
//! exits before reading its input must produce an error line, not kill wharf without a word)
//! and turns only failed writes to its own standard output and error into the signal.

use std::any::Any;

/// Installs the panic hook that turns `println!`/`eprintln!` hitting a closed pipe into
/// [`die_of_sigpipe`]; every other panic goes to the previous hook as before.
pub fn install() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_stdio_panic(info.payload()) {
            die_of_sigpipe();
        }
        previous(info)
    }));
}

/// The text of std's panic when `print!` or `eprint!` fail with EPIPE:
/// "failed printing to stdout: Broken pipe (os error 32)".
fn is_closed_stdio_panic(payload: &(dyn Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    let to_stdio = message.starts_with("failed printing to stdout")
        || message.starts_with("failed printing to stderr");
    to_stdio && message.ends_with(&broken_pipe().to_string())
}

#[cfg(unix)]
fn broken_pipe() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::EPIPE)
}

#[cfg(not(unix))]
fn broken_pipe() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::BrokenPipe)
}

/// `Err` unless the error is a closed pipe, in which case wharf ends here (see the module).
/// For writes to standard output or error that do not go through `print!`.
pub fn or_die_of_closed_pipe(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => die_of_sigpipe(),
        other => other,
    }
}

/// Ends the process by SIGPIPE with its default action, as a write to a closed pipe ends a
/// program that never ignored the signal. Nothing is printed: the reader is gone.
pub fn die_of_sigpipe() -> ! {
    #[cfg(unix)]
    // SAFETY: resetting one signal's disposition to its default and raising it in the calling
    // thread; no handler runs, no Rust state is touched.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached where the signal is delivered; the shell's number for it otherwise.
    std::process::exit(128 + 13)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_std_print_panics_on_a_closed_pipe_only() {
        let closed = format!("failed printing to stdout: {}", broken_pipe());
        assert!(is_closed_stdio_panic(&closed));
        let closed = format!("failed printing to stderr: {}", broken_pipe());
        assert!(is_closed_stdio_panic(&closed));
        let other = "failed printing to stdout: No space left on device (os error 28)".to_string();
        assert!(!is_closed_stdio_panic(&other));
        assert!(!is_closed_stdio_panic(&"index out of bounds"));
        assert!(!is_closed_stdio_panic(&42));
    }

    #[test]
    fn other_io_errors_are_returned() {
        let err = std::io::Error::other("disk full");
        assert!(or_die_of_closed_pipe(Err(err)).is_err());
        assert!(or_die_of_closed_pipe(Ok(())).is_ok());
    }
}
