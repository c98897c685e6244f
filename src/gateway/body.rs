//! Response bodies: streamed through untouched while the gateway counts the bytes and keeps the
//! first few kilobytes for the audit event, which is emitted when the stream ends (or the client
//! goes away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, SizeHint};

/// The body type every gateway response uses.
pub type GatewayBody = BoxBody<Bytes, hyper::Error>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> GatewayBody {
    full(Bytes::new())
}

/// What a finished stream looked like.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// The first bytes (up to the capture limit).
    pub head: Vec<u8>,
    /// Total bytes.
    pub total: u64,
    /// Whether the stream ended normally (false: upstream error or client gone).
    pub complete: bool,
}

type OnEnd = Box<dyn FnOnce(Captured) + Send + Sync>;

/// Streams `inner`, capturing its start, and calls `on_end` exactly once.
pub struct TeeBody<B> {
    inner: B,
    captured: Captured,
    limit: usize,
    on_end: Option<OnEnd>,
}

impl<B> TeeBody<B> {
    /// Wraps a body.
    pub fn new(
        inner: B,
        limit: usize,
        on_end: impl FnOnce(Captured) + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            captured: Captured::default(),
            limit,
            on_end: Some(Box::new(on_end)),
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(on_end) = self.on_end.take() {
            let mut captured = std::mem::take(&mut self.captured);
            captured.complete = complete;
            on_end(captured);
        }
    }
}

impl<B> Drop for TeeBody<B> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl<B> Body for TeeBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.captured.total += data.len() as u64;
                    let room = this.limit.saturating_sub(this.captured.head.len());
                    this.captured
                        .head
                        .extend_from_slice(&data[..room.min(data.len())]);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a body could not be read whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// It is longer than the limit.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The peer stopped sending or the framing broke before the body ended.
    #[error("body could not be read whole: {0}")]
    Broken(String),
}

/// Reads a body whole, refusing past `limit` bytes.
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ReadError::TooLarge(limit))
        }
        Err(e) => Err(ReadError::Broken(e.to_string())),
    }
}

/// The JSON-RPC messages of a response: the body itself when JSON, or every `data:` payload of
/// an SSE stream.
pub fn messages(content_type: &str, body: &[u8]) -> Vec<serde_json::Value> {
    if super::media::is_event_stream(content_type) {
        super::sse::payloads(body)
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    } else {
        serde_json::from_slice(body).ok().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_from_json_or_from_each_sse_event() {
        let body =
            b"event: message\nid: 1\ndata: {\"a\":\ndata: 1}\n\n: comment\ndata: {\"b\":2}\r\n\r\n";
        let msgs = messages("text/event-stream", body);
        assert_eq!(msgs.len(), 2);
        assert_eq!(messages("application/json", b"{\"x\":1}").len(), 1);
        assert!(messages("application/json", b"{broken").is_empty());
    }
}
