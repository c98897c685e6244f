//! Server-sent event streams taken apart and put back together, so the gateway reviews every
//! message an upstream sends on a long-lived stream (the GET stream, `subscriptions/listen`)
//! before a client sees it.
//!
//! A tools/list response can arrive on such a stream (a resumed POST stream replayed on GET
//! with `Last-Event-ID`); passing it through unread would show a client tools nobody approved.
//! So the gateway splits the stream into events by the SSE rules (lines end in CRLF, LF or CR;
//! an empty line ends an event), and sends on only what it could read, re-serialized in one
//! canonical form: a reviewed JSON message, the event's id and retry, or a bare comment for a
//! keep-alive. An event whose data is not JSON is dropped (a lenient client might read what
//! the gateway could not), and so is an unfinished event when the stream ends.

use serde_json::Value;

/// The event being read grew past the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an upstream SSE event is larger than {0} bytes")]
pub struct EventTooLarge(pub usize);

/// Splits a byte stream into whole SSE events (each with its terminating empty line).
#[derive(Debug)]
pub struct EventSplitter {
    buf: Vec<u8>,
    scanned: usize,
    line_start: bool,
    max_event: usize,
}

impl EventSplitter {
    /// A splitter that refuses events longer than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            line_start: true,
            max_event,
        }
    }

    /// Bytes of an event not finished yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The bytes of the unfinished event, when the stream is over.
    pub fn into_rest(self) -> Vec<u8> {
        self.buf
    }

    /// Adds bytes; returns the events they completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, EventTooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = self.scanned;
        let mut line_start = self.line_start;
        while i < self.buf.len() {
            match self.buf[i] {
                b'\n' | b'\r' => {
                    let end = if self.buf[i] == b'\r' {
                        match self.buf.get(i + 1) {
                            None => break, // CR LF may be split across chunks: wait
                            Some(b'\n') => i + 2,
                            Some(_) => i + 1,
                        }
                    } else {
                        i + 1
                    };
                    if line_start {
                        events.push(self.buf[start..end].to_vec());
                        start = end;
                    }
                    line_start = true;
                    i = end;
                }
                _ => {
                    line_start = false;
                    i += 1;
                }
            }
        }
        self.buf.drain(..start);
        self.scanned = i - start;
        self.line_start = line_start;
        if self.buf.len() > self.max_event {
            return Err(EventTooLarge(self.max_event));
        }
        Ok(events)
    }
}

/// The fields of one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `event:`.
    pub name: Option<String>,
    /// The `data:` lines joined with LF; `None` when there were none.
    pub data: Option<String>,
    /// `id:` (ignored when it holds NUL, as the SSE rules say).
    pub id: Option<String>,
    /// `retry:` when all digits.
    pub retry: Option<u64>,
}

impl Event {
    /// Reads one event's bytes.
    pub fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let mut event = Event::default();
        for line in text.split(['\n', '\r']) {
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "data" => match &mut event.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => event.data = Some(value.to_string()),
                },
                "event" => event.name = Some(value.to_string()),
                "id" if !value.contains('\0') => event.id = Some(value.to_string()),
                "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    event.retry = value.parse().ok();
                }
                _ => {}
            }
        }
        event
    }
}

/// The data of every event in a captured SSE body, the unfinished last one included (a capture
/// may end mid-event; this is for reading what was said, never for passing it on).
pub fn payloads(body: &[u8]) -> Vec<String> {
    let mut splitter = EventSplitter::new(usize::MAX);
    let mut events = splitter.push(body).unwrap_or_default();
    events.push(splitter.into_rest());
    events.iter().filter_map(|e| Event::parse(e).data).collect()
}

/// What to send on for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send these bytes.
    Send(String),
    /// Drop it: its data is not one JSON object read one way, or the review withheld it.
    Unreadable,
}

/// What a review made of one event's message.
#[derive(Debug, Clone, PartialEq)]
pub enum Review {
    /// It goes on as it was read.
    Keep,
    /// It goes on as this.
    Replace(Value),
    /// It does not go on.
    Withhold,
}

/// Rebuilds an event in canonical form around `message` (a reviewed JSON-RPC message).
pub fn write_event(event: &Event, message: Option<&Value>) -> String {
    write_event_text(event, message.map(|m| m.to_string()).as_deref())
}

/// Rebuilds an event in canonical form around the JSON text of a message (one `data:` line
/// per line of it: JSON has line breaks only between tokens).
fn write_event_text(event: &Event, message: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(id) = &event.id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(retry) = event.retry {
        out.push_str(&format!("retry: {retry}\n"));
    }
    match message {
        Some(message) => {
            let name = event
                .name
                .as_deref()
                .filter(|n| {
                    !n.is_empty()
                        && n.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
                })
                .unwrap_or("message");
            out.push_str("event: ");
            out.push_str(name);
            out.push('\n');
            for line in message.split('\n') {
                out.push_str("data: ");
                out.push_str(line);
                out.push('\n');
            }
        }
        None if out.is_empty() => out.push_str(":\n"),
        None => {}
    }
    out.push('\n');
    out
}

/// Decides one event: data that is one JSON object goes through `review` (which may keep it,
/// rewrite it or withhold it) and goes on in canonical framing; an event without data keeps
/// only its id, retry or a bare comment.
pub fn judge(bytes: &[u8], review: impl FnOnce(Value) -> Review) -> Verdict {
    let event = Event::parse(bytes);
    match &event.data {
        // An empty data field dispatches no message (a priming event: id and retry only, as
        // MCP 2025-11-25 servers such as rmcp send first).
        None => Verdict::Send(write_event(&event, None)),
        Some(data) if data.is_empty() => Verdict::Send(write_event(&event, None)),
        // One message per event, read the one way: an array (a batch, not part of MCP) or a
        // repeated key could be read otherwise by the client.
        Some(data) => match crate::protocol::strict_json::parse_str(data) {
            Ok(message) if message.is_object() => match review(message) {
                Review::Keep => Verdict::Send(write_event_text(&event, Some(data))),
                Review::Replace(message) => Verdict::Send(write_event(&event, Some(&message))),
                Review::Withhold => Verdict::Unreadable,
            },
            Ok(_) | Err(_) => Verdict::Unreadable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = EventSplitter::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            for e in s.push(c).expect("within limit") {
                out.push(String::from_utf8(e).expect("utf-8"));
            }
        }
        out
    }

    #[test]
    fn events_end_at_an_empty_line_whatever_the_line_endings() {
        let events = split_all(&[b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n"]);
        assert_eq!(events, ["data: a\n\n", "data: b\r\n\r\n", "data: c\r\r"]);
        // Split anywhere, even between CR and LF, the result is the same.
        let whole = b"id: 1\r\ndata: x\r\n\r\n:\n\ndata: y\n\n";
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(
                split_all(&[a, b]),
                ["id: 1\r\ndata: x\r\n\r\n", ":\n\n", "data: y\n\n"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn payloads_are_joined_per_event_and_a_cut_last_event_is_read_too() {
        let body = b"event: message\nid: 1\ndata: {\"a\":\ndata: 1}\n\n: comment\ndata: {\"b\":2}\r\n\r\ndata: {\"c\"";
        assert_eq!(payloads(body), ["{\"a\":\n1}", "{\"b\":2}", "{\"c\""]);
    }

    #[test]
    fn an_event_past_the_limit_is_refused() {
        let mut s = EventSplitter::new(16);
        assert!(s.push(b"data: 0123").is_ok());
        assert_eq!(s.push(b"456789abcdef"), Err(EventTooLarge(16)));
    }

    #[test]
    fn events_are_parsed_by_the_rules() {
        let e = Event::parse(
            b"event: note\r\nid: 7\r\nretry: 50\r\ndata: {\"a\":\r\ndata:1}\r\n: c\r\n\r\n",
        );
        assert_eq!(e.name.as_deref(), Some("note"));
        assert_eq!(e.id.as_deref(), Some("7"));
        assert_eq!(e.retry, Some(50));
        assert_eq!(e.data.as_deref(), Some("{\"a\":\n1}"));
        assert_eq!(Event::parse(b"id: a\0b\n\n").id, None);
        assert_eq!(Event::parse(b"retry: -5\n\n").retry, None);
    }

    fn keep(_: Value) -> Review {
        Review::Keep
    }

    #[test]
    fn only_readable_events_go_on_in_canonical_form() {
        let reviewed = judge(
            b"id: 3\ndata: {\"result\":{\"tools\":[1,2]}}\n\n",
            |mut v| {
                v["result"]["tools"] = json!([1]);
                Review::Replace(v)
            },
        );
        assert_eq!(
            reviewed,
            Verdict::Send("id: 3\nevent: message\ndata: {\"result\":{\"tools\":[1]}}\n\n".into())
        );
        assert_eq!(
            judge(b"data: {\"x\":1} trailing\n\n", keep),
            Verdict::Unreadable
        );
        // A batch, a repeated key, or a withheld message does not go on.
        assert_eq!(judge(b"data: [{\"a\":1}]\n\n", keep), Verdict::Unreadable);
        assert_eq!(
            judge(b"data: {\"id\":1,\"id\":2}\n\n", keep),
            Verdict::Unreadable
        );
        assert_eq!(
            judge(b"data: {}\n\n", |_| Review::Withhold),
            Verdict::Unreadable
        );
        assert_eq!(
            judge(b": keep-alive\n\n", keep),
            Verdict::Send(":\n\n".into())
        );
        // Kept as read: the text goes on, one data line per line, in canonical framing.
        assert_eq!(
            judge(b"id: 9\r\ndata: {\"a\":\r\ndata:  1}\r\n\r\n", keep),
            Verdict::Send("id: 9\nevent: message\ndata: {\"a\":\ndata:  1}\n\n".into())
        );
        assert_eq!(
            judge(b"event: \x1b[2J\ndata: {}\n\n", keep),
            Verdict::Send("event: message\ndata: {}\n\n".into())
        );
    }
}
