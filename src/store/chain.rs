//! The tamper-evident hash chain over each source's events.
//!
//! A producer's store seals every event it appends with a `chainhash` extension attribute, the
//! last member of the event's JSON object:
//!
//! ```text
//! chainhash(n) = "sha256:" + hex(SHA-256(chainhash(n-1) + "\n" + unsealed(n)))
//! ```
//!
//! where `unsealed(n)` is the event's exact JSON text without the attribute and
//! `chainhash(0)` is the empty string. Editing an event breaks its own link; removing one
//! leaves a gap in the sequence; removing the newest ones disagrees with the chain head kept
//! beside the events; retention records the hash of the last event it pruned, so the chain
//! still starts from a known link. The check works on exact text, so it runs the same on a
//! store, on `mcpsoc export` output or on a subscriber's copy of the events.

use sha2::{Digest, Sha256};

/// The CloudEvents extension attribute that carries the link.
pub const ATTRIBUTE: &str = "chainhash";

const PREFIX: &str = "sha256:";
const HEX_LEN: usize = 64;
/// `,"chainhash":"sha256:` then 64 hex digits then `"}`.
const SUFFIX_LEN: usize = 2 + ATTRIBUTE.len() + 3 + PREFIX.len() + HEX_LEN + 2;

/// Extra-metadata name of a producer's chain head (the newest link it sealed).
pub fn head_key(source: &str) -> String {
    format!("chain.head/{source}")
}

/// Extra-metadata name of the link of the newest event retention pruned (`seq` then hash).
pub fn anchor_key(source: &str) -> String {
    format!("chain.anchor/{source}")
}

/// The link that follows `prev` for an event whose unsealed JSON is `unsealed`.
pub fn link(prev: &str, unsealed: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    hasher.update(unsealed.as_bytes());
    format!("{PREFIX}{}", hex::encode(hasher.finalize()))
}

/// Seals an event's JSON object text (which must not carry the attribute yet) in place:
/// returns the sealed text and its link.
pub fn seal(prev: &str, unsealed: String) -> (String, String) {
    let hash = link(prev, &unsealed);
    let mut sealed = unsealed;
    if sealed.ends_with('}') {
        sealed.pop();
    }
    sealed.reserve(SUFFIX_LEN);
    sealed.push_str(",\"");
    sealed.push_str(ATTRIBUTE);
    sealed.push_str("\":\"");
    sealed.push_str(&hash);
    sealed.push_str("\"}");
    (sealed, hash)
}

/// Splits sealed text into its unsealed text and its link; `None` when it carries no
/// well-formed `chainhash` as its last member.
pub fn unseal(sealed: &str) -> Option<(String, &str)> {
    if sealed.len() < SUFFIX_LEN + 1 || !sealed.is_char_boundary(sealed.len() - SUFFIX_LEN) {
        return None;
    }
    let (body, suffix) = sealed.split_at(sealed.len() - SUFFIX_LEN);
    let rest = suffix
        .strip_prefix(",\"")?
        .strip_prefix(ATTRIBUTE)?
        .strip_prefix("\":\"")?;
    let hash = rest.strip_suffix("\"}")?;
    let digits = hash.strip_prefix(PREFIX)?;
    if digits.len() != HEX_LEN || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((format!("{body}}}"), hash))
}

/// Encodes a retention anchor: the pruned event's sequence and link.
pub fn encode_anchor(seq: u64, hash: &str) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    v.extend_from_slice(hash.as_bytes());
    v
}

/// Decodes a retention anchor.
pub fn decode_anchor(bytes: &[u8]) -> Option<(u64, String)> {
    let (seq, hash) = bytes.split_at_checked(8)?;
    let seq = u64::from_be_bytes(seq.try_into().ok()?);
    Some((seq, String::from_utf8(hash.to_vec()).ok()?))
}

/// Why a chain is broken, at the first link that fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// An event's text does not hash to its own link: it was edited.
    Edited {
        /// The event.
        sequence: u64,
    },
    /// The sequence jumps: events were removed.
    Missing {
        /// The first missing sequence.
        from: u64,
        /// The last missing sequence.
        to: u64,
    },
    /// An event after chained ones carries no link: it was replaced or its link stripped.
    Unsealed {
        /// The event.
        sequence: u64,
    },
    /// The event stored under a sequence names another sequence or source.
    Misplaced {
        /// Where it is stored.
        sequence: u64,
    },
    /// The chain head kept beside the events disagrees with the newest event: the newest
    /// events were removed or replaced.
    Head {
        /// The newest event present.
        last_present: u64,
    },
    /// The oldest events are gone and no retention anchor accounts for them.
    Truncated {
        /// The first event present.
        first_present: u64,
    },
    /// An event is not valid JSON text of an event.
    Unreadable {
        /// The event.
        sequence: u64,
        /// The parser's complaint.
        reason: String,
    },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Edited { sequence } => write!(
                f,
                "sequence {sequence}: the event does not match its chain hash (edited)"
            ),
            Break::Missing { from, to } if from == to => {
                write!(f, "sequence {from}: the event is missing (deleted)")
            }
            Break::Missing { from, to } => {
                write!(
                    f,
                    "sequences {from}..={to}: the events are missing (deleted)"
                )
            }
            Break::Unsealed { sequence } => write!(
                f,
                "sequence {sequence}: the event carries no chain hash after chained events (replaced)"
            ),
            Break::Misplaced { sequence } => write!(
                f,
                "sequence {sequence}: the event stored there names another source or sequence (moved)"
            ),
            Break::Head { last_present } => write!(
                f,
                "after sequence {last_present}: the chain head does not match the newest event (newest events deleted or replaced)"
            ),
            Break::Truncated { first_present } => write!(
                f,
                "before sequence {first_present}: the oldest events are missing and retention did not prune them"
            ),
            Break::Unreadable { sequence, reason } => {
                write!(f, "sequence {sequence}: unreadable event ({reason})")
            }
        }
    }
}

/// What the check found for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The source.
    pub source: String,
    /// The first and last sequence checked (`None` when there were no events).
    pub range: Option<(u64, u64)>,
    /// Events checked.
    pub events: u64,
    /// Of those, events carrying a link.
    pub sealed: u64,
    /// Events before the first link (written before chaining existed), accepted as history.
    pub unsealed_prefix: u64,
    /// The first broken link, if any.
    pub broken: Option<Break>,
    /// Things worth knowing that are not breaks.
    pub notes: Vec<String>,
}

impl ChainReport {
    /// True when nothing is broken.
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// How the first event present may link to what came before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Nothing known: the copy began wherever its producer was (a subscriber's copy, an
    /// export); the first event's link is taken as given.
    Unknown,
    /// This store is the producer: it must begin at sequence 1 or right after a retention
    /// anchor.
    Producer {
        /// The retention anchor: sequence and link of the newest pruned event.
        anchor: Option<(u64, String)>,
    },
}

/// Checks one source's events, fed in stored order.
#[derive(Debug)]
pub struct Verifier {
    report: ChainReport,
    start: Start,
    prev: Option<String>,
    next: Option<u64>,
}

/// Where an event belongs: its source and sequence, read from its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Position {
    /// The event's `source`.
    pub source: String,
    /// The event's `sequence`.
    pub sequence: u64,
}

impl Position {
    /// Reads the position of an event's JSON text.
    pub fn of(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl Verifier {
    /// Starts checking `source`.
    pub fn new(source: &str, start: Start) -> Self {
        Self {
            report: ChainReport {
                source: source.to_string(),
                range: None,
                events: 0,
                sealed: 0,
                unsealed_prefix: 0,
                broken: None,
                notes: Vec::new(),
            },
            start,
            prev: None,
            next: None,
        }
    }

    /// True once a break was found (later events are not looked at).
    pub fn is_broken(&self) -> bool {
        self.report.broken.is_some()
    }

    /// Feeds the event stored under `sequence`.
    pub fn feed(&mut self, sequence: u64, text: &str) {
        if self.is_broken() {
            return;
        }
        self.report.events += 1;
        self.report.range = Some(match self.report.range {
            None => (sequence, sequence),
            Some((first, _)) => (first, sequence),
        });
        match self.next {
            None => self.begin(sequence),
            Some(expected) if sequence != expected => {
                self.report.broken = Some(Break::Missing {
                    from: expected,
                    to: sequence.saturating_sub(1),
                });
                return;
            }
            Some(_) => {}
        }
        if self.is_broken() {
            return;
        }
        self.next = Some(sequence + 1);
        match Position::of(text) {
            Ok(p) if p.sequence == sequence && p.source == self.report.source => {}
            Ok(_) => {
                self.report.broken = Some(Break::Misplaced { sequence });
                return;
            }
            Err(e) => {
                self.report.broken = Some(Break::Unreadable {
                    sequence,
                    reason: e.to_string(),
                });
                return;
            }
        }
        let Some((unsealed, hash)) = unseal(text) else {
            if self.prev.is_some() {
                self.report.broken = Some(Break::Unsealed { sequence });
            } else {
                self.report.unsealed_prefix += 1;
            }
            return;
        };
        self.report.sealed += 1;
        match &self.prev {
            Some(prev) if link(prev, &unsealed) != hash => {
                self.report.broken = Some(Break::Edited { sequence });
                return;
            }
            Some(_) => {}
            // The first link of a copy that began mid-chain: its predecessor is unknown, but
            // the event must still hash to it when the chain began right here.
            None if (self.report.unsealed_prefix > 0 || sequence == 1)
                && link("", &unsealed) != hash =>
            {
                self.report.broken = Some(Break::Edited { sequence });
                return;
            }
            None => {}
        }
        self.prev = Some(hash.to_string());
    }

    fn begin(&mut self, first: u64) {
        match &self.start {
            Start::Unknown => {
                if first > 1 {
                    self.report.notes.push(format!(
                        "begins at sequence {first}: this copy never held the events before it, so its first link is taken as given"
                    ));
                }
            }
            Start::Producer { anchor } => match anchor {
                Some((seq, hash)) if seq + 1 == first => {
                    self.prev = Some(hash.clone());
                    self.report
                        .notes
                        .push(format!("events 1..={seq} were pruned by retention"));
                }
                _ if first == 1 => {}
                _ => {
                    self.report.broken = Some(Break::Truncated {
                        first_present: first,
                    })
                }
            },
        }
    }

    /// Ends the check: `last` is the source's resume position and `head` the producer's chain
    /// head, where known.
    pub fn finish(mut self, last: Option<u64>, head: Option<&str>) -> ChainReport {
        if self.report.broken.is_none() {
            let present = self.report.range.map(|(_, l)| l).unwrap_or(0);
            if let Some(last) = last
                && last > present
            {
                self.report.broken = Some(Break::Missing {
                    from: present + 1,
                    to: last,
                });
            } else if let Some(head) = head
                && self.prev.as_deref() != Some(head)
            {
                self.report.broken = Some(Break::Head {
                    last_present: present,
                });
            }
        }
        if self.report.broken.is_none() && self.report.unsealed_prefix > 0 {
            self.report.notes.push(format!(
                "{} older events carry no chain hash (written before chaining); the chain begins after them",
                self.report.unsealed_prefix
            ));
        }
        self.report
    }
}

impl super::Store {
    /// Checks the hash chain of every source in the store, or of one. A source this store
    /// produced (it keeps a chain head) must start at sequence 1 or right after a retention
    /// anchor; a source it received starts wherever its copy starts.
    pub fn verify_chains(&self, only: Option<&str>) -> Result<Vec<ChainReport>, super::StoreError> {
        let mut reports = Vec::new();
        for source in self.sources() {
            if only.is_some_and(|o| o != source) {
                continue;
            }
            // The head and the resume position as of one moment (the writer may be appending
            // while the check runs): the walk stops at that position.
            let (head, last) = {
                let _writer = self.writer()?;
                let head = self
                    .extra(&head_key(&source))?
                    .map(|v| String::from_utf8_lossy(&v).into_owned());
                (head, self.last_sequence(&source))
            };
            let start = match &head {
                Some(_) => Start::Producer {
                    anchor: self
                        .extra(&anchor_key(&source))?
                        .as_deref()
                        .and_then(decode_anchor),
                },
                None => Start::Unknown,
            };
            let mut verifier = Verifier::new(&source, start);
            let mut after = 0;
            while after < last {
                let page = self.events_after(&source, after, 1_000)?;
                let Some(newest) = page.last() else { break };
                after = newest.sequence;
                for event in page.iter().filter(|e| e.sequence <= last) {
                    verifier.feed(event.sequence, &event.json);
                }
                if verifier.is_broken() {
                    break;
                }
            }
            reports.push(verifier.finish(Some(last), head.as_deref()));
        }
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, body: &str) -> String {
        format!(r#"{{"source":"s","sequence":{seq},"data":{{"x":"{body}"}}}}"#)
    }

    fn chain(n: u64) -> Vec<String> {
        let mut prev = String::new();
        (1..=n)
            .map(|seq| {
                let (sealed, hash) = seal(&prev, event(seq, "v"));
                prev = hash;
                sealed
            })
            .collect()
    }

    fn check(events: &[(u64, String)], start: Start, head: Option<&str>) -> ChainReport {
        let mut v = Verifier::new("s", start);
        for (seq, text) in events {
            v.feed(*seq, text);
        }
        v.finish(events.last().map(|(s, _)| *s), head)
    }

    fn numbered(events: Vec<String>) -> Vec<(u64, String)> {
        events.into_iter().zip(1..).map(|(t, s)| (s, t)).collect()
    }

    #[test]
    fn seal_then_unseal_gives_back_the_text_and_link() {
        let (sealed, hash) = seal("", event(1, "v"));
        assert!(sealed.ends_with(&format!(r#","chainhash":"{hash}"}}"#)));
        let (unsealed, got) = unseal(&sealed).expect("sealed");
        assert_eq!(unsealed, event(1, "v"));
        assert_eq!(got, hash);
        assert!(unseal(&event(1, "v")).is_none());
        assert!(unseal("").is_none());
        assert!(unseal("é").is_none());
    }

    #[test]
    fn an_intact_chain_verifies_and_every_kind_of_tampering_is_named() {
        let events = numbered(chain(5));
        let head = unseal(&events[4].1).map(|(_, h)| h.to_string());
        let producer = || Start::Producer { anchor: None };
        let ok = check(&events, producer(), head.as_deref());
        assert!(ok.intact(), "{ok:?}");
        assert_eq!((ok.events, ok.sealed, ok.range), (5, 5, Some((1, 5))));

        let mut edited = events.clone();
        edited[2].1 = edited[2].1.replace("\"v\"", "\"w\"");
        let r = check(&edited, producer(), head.as_deref());
        assert_eq!(r.broken, Some(Break::Edited { sequence: 3 }));

        let mut deleted = events.clone();
        deleted.remove(1);
        let r = check(&deleted, producer(), head.as_deref());
        assert_eq!(r.broken, Some(Break::Missing { from: 2, to: 2 }));

        let r = check(&events[..4], producer(), head.as_deref());
        assert_eq!(r.broken, Some(Break::Head { last_present: 4 }));

        let r = check(&events[2..], producer(), head.as_deref());
        assert_eq!(r.broken, Some(Break::Truncated { first_present: 3 }));

        let mut stripped = events.clone();
        stripped[3].1 = unseal(&stripped[3].1).expect("sealed").0;
        let r = check(&stripped, producer(), head.as_deref());
        assert_eq!(r.broken, Some(Break::Unsealed { sequence: 4 }));

        let mut moved = events.clone();
        moved[1].1 = events[2].1.clone();
        let r = check(&moved, producer(), head.as_deref());
        assert_eq!(r.broken, Some(Break::Misplaced { sequence: 2 }));
    }

    #[test]
    fn a_retention_anchor_or_a_copy_may_begin_mid_chain() {
        let events = numbered(chain(6));
        let anchor = unseal(&events[1].1).map(|(_, h)| (2, h.to_string()));
        let r = check(&events[2..], Start::Producer { anchor }, None);
        assert!(r.intact(), "{r:?}");
        let r = check(&events[2..], Start::Unknown, None);
        assert!(r.intact(), "{r:?}");
        assert_eq!(r.notes.len(), 1);
        // A wrong anchor fails at the first event after it.
        let wrong = Some((2, link("", "forged")));
        let r = check(&events[2..], Start::Producer { anchor: wrong }, None);
        assert_eq!(r.broken, Some(Break::Edited { sequence: 3 }));
    }

    #[test]
    fn events_written_before_chaining_are_accepted_only_before_the_first_link() {
        let mut events = vec![event(1, "old"), event(2, "old")];
        let (sealed, _) = seal("", event(3, "new"));
        events.push(sealed);
        let r = check(&numbered(events), Start::Producer { anchor: None }, None);
        assert!(r.intact(), "{r:?}");
        assert_eq!((r.unsealed_prefix, r.sealed), (2, 1));
    }
}
