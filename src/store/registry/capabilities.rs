//! What wharf knows about each registry host: the limits it holds every answer to, and the
//! capabilities and quirks learned once per run and used by every repository on that host
//! (whether it speaks the referrers API, the scheme an insecure host answers on, the piece
//! size a body limit in front of it forced).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The kinds of document a registry answers with, each read whole into memory and therefore
/// held to a limit: memory must not follow a size a peer chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// An image manifest or index, a `.sig`/`.att` manifest, a fallback referrers index.
    Manifest,
    /// One page of `tags/list`.
    TagList,
    /// An answer of the referrers API.
    Referrers,
    /// A token service's answer.
    Token,
    /// The body of an error answer (only its start is shown).
    Error,
}

impl DocumentKind {
    /// The most bytes read of one such document. Manifests: 4 MiB, as distribution and the
    /// OCI distribution spec's recommendation allow; indexes and tag pages get the same. Token
    /// answers are a few KiB in practice, error bodies less.
    pub fn limit(self) -> u64 {
        match self {
            DocumentKind::Manifest | DocumentKind::TagList | DocumentKind::Referrers => 4 << 20,
            DocumentKind::Token => 256 << 10,
            DocumentKind::Error => 64 << 10,
        }
    }

    /// What the document is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            DocumentKind::Manifest => "manifest",
            DocumentKind::TagList => "tag list",
            DocumentKind::Referrers => "referrers index",
            DocumentKind::Token => "token answer",
            DocumentKind::Error => "error answer",
        }
    }
}

/// The most pages of `tags/list` followed, and the most tags collected over them.
pub const MAX_TAG_PAGES: usize = 1000;
pub const MAX_TAGS: usize = 200_000;

/// The size of the first request body of a chunked upload: large enough that per-request
/// overhead does not matter, small enough to hold once per concurrent upload.
pub const CHUNK_SIZE: usize = 16 << 20;

/// The smallest piece a 413 makes a chunked upload shrink to; a registry refusing even this
/// is refused back with an error rather than sent thousands of tiny requests.
pub const MIN_CHUNK_SIZE: usize = 64 << 10;

/// The time a tag write may take on this machine between its read's answer and its last
/// byte leaving, besides the network: merging, and the runtime getting to it.
pub const LOCAL_WRITE_BUDGET: Duration = Duration::from_millis(100);

/// How long a write may still land after its writer let go of it, beyond the estimate of
/// [`HostCapabilities::overwrite_window`]: time for a scheduler to run the writer that sent it.
pub const SCHEDULING_MARGIN: Duration = Duration::from_millis(100);

/// What one registry host has shown of itself in this run.
pub struct HostCapabilities {
    /// For a host allowed to be insecure: the scheme it answered on (probed once).
    pub scheme: tokio::sync::OnceCell<&'static str>,
    /// Whether it answers the OCI 1.1 referrers API, learnt from the first call.
    pub referrers_api: tokio::sync::OnceCell<bool>,
    /// The piece size chunked uploads start at: a body limit one blob ran into (413) holds
    /// for every later blob to this host, which then do not hit it again.
    piece_size: AtomicUsize,
    /// Round trips seen (request sent to answer's headers): the fastest is the network's
    /// floor, without the waits a busy machine or registry adds.
    fastest_round_trip: Mutex<Option<Duration>>,
    /// The slowest conditional tag write seen (sent to answered).
    slowest_tag_write: Mutex<Duration>,
}

impl HostCapabilities {
    fn new() -> HostCapabilities {
        HostCapabilities {
            scheme: tokio::sync::OnceCell::new(),
            referrers_api: tokio::sync::OnceCell::new(),
            piece_size: AtomicUsize::new(CHUNK_SIZE),
            fastest_round_trip: Mutex::new(None),
            slowest_tag_write: Mutex::new(Duration::ZERO),
        }
    }

    pub fn record_round_trip(&self, took: Duration) {
        let mut fastest = self.fastest_round_trip.lock().expect("round trips");
        if fastest.is_none_or(|f| took < f) {
            *fastest = Some(took);
        }
    }

    pub fn record_tag_write(&self, took: Duration) {
        let mut slowest = self.slowest_tag_write.lock().expect("tag writes");
        *slowest = (*slowest).max(took);
    }

    fn fastest_round_trip(&self) -> Duration {
        self.fastest_round_trip
            .lock()
            .expect("round trips")
            .unwrap_or(Duration::ZERO)
    }

    /// How old the read a tag write is based on may be when the write's last byte leaves:
    /// a round trip to read it, one to start the write, and [`LOCAL_WRITE_BUDGET`]. A writer
    /// that took longer (a busy machine, a stalled connection) reads again instead.
    pub fn tag_write_age_limit(&self) -> Duration {
        LOCAL_WRITE_BUDGET + 2 * self.fastest_round_trip()
    }

    /// How long after a tag write of ours another writer's write, based on an older read,
    /// can still land: its age limit (as ours), its own way to the registry (taken as twice
    /// our slowest tag write), and time for a scheduler to run the writer that sent it.
    pub fn overwrite_window(&self) -> Duration {
        let slowest = *self.slowest_tag_write.lock().expect("tag writes");
        self.tag_write_age_limit() + 2 * slowest + SCHEDULING_MARGIN
    }

    pub fn piece_size(&self) -> usize {
        self.piece_size.load(Ordering::Relaxed)
    }

    /// A body limit refused a piece larger than `size`: start there from now on.
    pub fn limit_piece_size(&self, size: usize) {
        self.piece_size.fetch_min(size, Ordering::Relaxed);
    }
}

/// Every host's [`HostCapabilities`], shared by all repositories of a run.
#[derive(Default)]
pub struct Capabilities {
    hosts: Mutex<HashMap<String, Arc<HostCapabilities>>>,
}

impl Capabilities {
    pub fn host(&self, registry: &str) -> Arc<HostCapabilities> {
        self.hosts
            .lock()
            .expect("capabilities lock")
            .entry(registry.to_string())
            .or_insert_with(|| Arc::new(HostCapabilities::new()))
            .clone()
    }
}
