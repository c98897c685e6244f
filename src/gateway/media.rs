//! What a body is, read from its headers the way RFC 9110 says: media types compared without
//! regard to case and with their parameters (`Text/Event-Stream; charset=UTF-8` is an event
//! stream), and a body the gateway would have to decode (any `Content-Encoding` but
//! `identity`) or whose type is stated twice is not read at all. A reviewing decision then
//! never rests on a spelling the gateway and the client read differently.

use hyper::HeaderMap;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE};

/// How a body's bytes are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` (or any `+json` type).
    Json,
    /// `text/event-stream`.
    EventStream,
    /// Something else, or no `Content-Type` at all.
    Other,
}

/// A body the gateway cannot read with certainty, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// The body is compressed or otherwise encoded.
    #[error("the body has Content-Encoding {0:?}; the gateway reviews only unencoded bodies")]
    Encoded(String),
    /// More than one `Content-Type` or `Content-Encoding` header.
    #[error("the body states its {0} more than once")]
    Repeated(&'static str),
    /// A `Content-Type` that is not a media type.
    #[error("Content-Type {0:?} is not a media type")]
    BadType(String),
}

/// Reads a body's kind from its headers.
pub fn body_kind(headers: &HeaderMap) -> Result<BodyKind, Unreadable> {
    if headers.get_all(CONTENT_ENCODING).iter().count() > 1 {
        return Err(Unreadable::Repeated("Content-Encoding"));
    }
    if let Some(encoding) = headers.get(CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(encoding.as_bytes()).to_string();
        if !text.trim().eq_ignore_ascii_case("identity") {
            return Err(Unreadable::Encoded(text.chars().take(64).collect()));
        }
    }
    let mut types = headers.get_all(CONTENT_TYPE).iter();
    let Some(value) = types.next() else {
        return Ok(BodyKind::Other);
    };
    if types.next().is_some() {
        return Err(Unreadable::Repeated("Content-Type"));
    }
    let text = value
        .to_str()
        .map_err(|_| Unreadable::BadType(String::from_utf8_lossy(value.as_bytes()).into()))?;
    kind_of(text)
}

/// Reads a `Content-Type` value.
pub fn kind_of(content_type: &str) -> Result<BodyKind, Unreadable> {
    // Only the type and subtype decide; parameters (with optional whitespace before the `;`,
    // which RFC 9110 allows) do not.
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let parsed: mime::Mime = essence
        .parse()
        .map_err(|_| Unreadable::BadType(content_type.chars().take(120).collect()))?;
    let (top, sub) = (parsed.type_(), parsed.subtype());
    Ok(if top == mime::TEXT && sub == mime::EVENT_STREAM {
        BodyKind::EventStream
    } else if top == mime::APPLICATION && (sub == mime::JSON || parsed.suffix() == Some(mime::JSON))
    {
        BodyKind::Json
    } else {
        BodyKind::Other
    })
}

/// Whether a `Content-Type` value names an event stream (unreadable values do not).
pub fn is_event_stream(content_type: &str) -> bool {
    kind_of(content_type) == Ok(BodyKind::EventStream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn media_types_match_without_case_and_with_parameters() {
        for t in [
            "text/event-stream",
            "Text/Event-Stream",
            "TEXT/EVENT-STREAM; charset=utf-8",
            " text/event-stream ;charset=\"UTF-8\"",
        ] {
            assert_eq!(kind_of(t), Ok(BodyKind::EventStream), "{t}");
        }
        for t in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/json-rpc+json",
        ] {
            assert_eq!(kind_of(t), Ok(BodyKind::Json), "{t}");
        }
        assert_eq!(kind_of("text/plain"), Ok(BodyKind::Other));
        assert_eq!(kind_of("text/event-streamx"), Ok(BodyKind::Other));
        assert!(kind_of("not a type").is_err());
    }

    #[test]
    fn encoded_or_doubly_typed_bodies_are_not_read() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(body_kind(&h), Ok(BodyKind::Json));
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("identity"));
        assert_eq!(body_kind(&h), Ok(BodyKind::Json));
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(matches!(body_kind(&h), Err(Unreadable::Encoded(_))));
        let mut two = HeaderMap::new();
        two.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        two.append(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        assert_eq!(body_kind(&two), Err(Unreadable::Repeated("Content-Type")));
        assert_eq!(body_kind(&HeaderMap::new()), Ok(BodyKind::Other));
    }
}
