//! Progress bars on a terminal, nothing otherwise.

use crate::store::OnBytes;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars only when stderr is a terminal and the caller wants them.
    pub fn new(enabled: bool) -> Progress {
        let enabled = enabled && std::io::stderr().is_terminal();
        Progress {
            multi: enabled.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    pub fn hidden() -> Progress {
        Progress { multi: None }
    }

    /// A bar counting bytes toward `total`.
    pub fn bytes(&self, label: &str, total: u64) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.bold} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar
    }

    /// A bar counting items (manifests, signatures).
    pub fn items(&self, label: &str, total: u64) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12.bold} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar
    }

    /// A byte counter feeding both a per-blob bar and the overall bar.
    pub fn blob_counter(
        &self,
        overall: &ProgressBar,
        label: &str,
        size: u64,
    ) -> (ProgressBar, OnBytes) {
        let bar = if self.multi.is_some() && size >= 1 << 20 {
            self.bytes(label, size)
        } else {
            ProgressBar::hidden()
        };
        let (b, o) = (bar.clone(), overall.clone());
        (
            bar,
            Arc::new(move |n| {
                b.inc(n);
                o.inc(n);
            }),
        )
    }
}
