//! Reading HTTP answers into memory with a limit: registries, token services, Fulcio and
//! Rekor are peers, and memory must not follow a size a peer chose. The limit holds while the
//! body streams in (a `Content-Length` is only believed when it says "too large"; a chunked
//! answer has none), and reading stops at once past it.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// Why a body was not read whole.
#[derive(Debug)]
pub enum BodyError {
    /// It is larger than the limit (declared so, or seen so while reading).
    TooLarge { limit: u64 },
    /// The connection broke while reading it.
    Transport(reqwest::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { limit } => {
                write!(f, "larger than {}", crate::files::size_text(*limit))
            }
            BodyError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// The whole body of `response`, or [`BodyError::TooLarge`] as soon as it passes `limit`.
pub async fn read_limited(response: reqwest::Response, limit: u64) -> Result<Bytes, BodyError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Transport)?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// At most the first `limit` bytes of the body of `response` (for error answers, of which
/// only the start is shown); what does not arrive is left out.
pub async fn read_prefix(response: reqwest::Response, limit: u64) -> Bytes {
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = (limit as usize).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= limit {
            break;
        }
    }
    body.freeze()
}
