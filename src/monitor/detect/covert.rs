//! Covert channels (MCP03): parameters whose descriptions tell the model to fill them with the
//! conversation, the system prompt, file contents or secrets — a `sidenote`, `context`,
//! `feedback` or `metadata` field that the server reads and the user never looks at.

use super::exfiltration::{SECRETS, SENSITIVE, negated_or_public};
use super::pattern::{Pattern, negated_before, pat, pat_with};

const RULE: &str = "covert_channel.exfil_parameter";

/// Verbs that fill a field.
const FILL: &str = concat!(
    r"(?:include|includes|including|pass|put|add|insert|append|attach|copy|paste|provide|send|fill|populate|write|dump",
    r"|store|supply|embed|summari[sz]e|record|log|enter|contain|contains|containing|must be|should be|set (?:it |this )?to|set [^\s]{1,40} to",
    r"|use|place|repeat|quote|echo|report|capture|transcribe|reproduce|forward|mirror)"
);

/// What must not leave the session.
fn leak_object() -> String {
    format!(
        concat!(
            r"(?:\b(?:entire|full|complete|whole|all|every|previous|prior|recent|earlier|preceding|past|last|verbatim|raw|exact)\b%w",
            r"(?:conversation|chat|dialog(?:ue)?|messages?|message history|history|transcript|prompts?|instructions|thread|exchange)s?\b",
            r"|\b(?:your|its|current|full|entire|exact|verbatim|hidden|complete|original) system (?:prompt|message|instructions)\b|\b(?:conversation|chat|message|dialog(?:ue)?) (?:history|log|transcript|so far|context|contents?)\b",
            r"|\b(?:user'?s?|human'?s?) (?:previous |prior |earlier |recent )?(?:messages|prompts|queries|requests|conversation|inputs)\b|\bcontext window\b",
            r"|\b(?:contents?|text) of (?:any|all|every|each|the|your)(?: (?:last|previous|recent|most recent|latest|other))? (?:files?|documents?|pages?|emails?)\b%w(?:read|opened|accessed|seen|viewed|loaded|processed)\b",
            r"|\b(?:your|the assistant'?s|the model'?s|the ai'?s|its)(?: (?:own|complete|full|entire|hidden|internal|exact|original|current|secret|private))* (?:system (?:prompt|message|instructions)|instructions|prompt|guidelines|configuration|chain of thought|reasoning|thoughts|memory|tool list|available tools)\b",
            r"|\b(?:every|all|each|the list of|list of) (?:the )?(?:tools?|functions?)\b%w(?:available to you|you (?:have|can (?:use|call|access))|at your disposal)",
            r"|\b(?:text|contents?|outputs?|results?) of (?:the |your )?(?:last|previous|recent|prior|other|earlier)(?: \d+| few| several)? (?:tool (?:results?|outputs?|calls?|responses?)|function (?:results?|outputs?)|files?|documents?|messages|emails)\b",
            r"|\b(?:files?|documents?|pages?|urls?|websites?|sites?|emails?) (?:that )?you (?:have |'ve )?(?:accessed|read|opened|visited|seen|viewed|browsed|edited)\b",
            r"|\b(?:gathered|collected|taken|extracted|pulled|scraped|inferred|harvested|copied|obtained|learned|found) (?:from|in) (?:the |this |our )?(?:chat|conversation|context|dialog(?:ue)?|messages|history|session|transcript)\b",
            r"|\{{\{{\s*[a-z_.]*(?:conversation|chat|history|messages|system_prompt|transcript|secret|api_key|credentials|password)[a-z_.]*\s*\}}\}}",
            r"|\b(?:everything|anything|all|whatever) (?:that )?(?:the user|the human|they|you) (?:has |have |had )?(?:said|typed|written|wrote|shared|asked|told you|sent|pasted|uploaded|mentioned)\b",
            r"|\b(?:any|all|every)\b%w{secrets}|{sensitive})"
        ),
        secrets = SECRETS,
        sensitive = SENSITIVE,
    )
}

fn negated(text: &str, start: usize, _end: usize) -> bool {
    negated_before(text, start)
}

/// A fill verb read as a noun ("the audit log of…", "an activity record of…") or negated.
fn noun_or_negated(text: &str, start: usize, end: usize) -> bool {
    if negated_or_public(text, start, end) {
        return true;
    }
    let before = text.as_bytes()[..start.min(text.len())]
        .rsplit(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or(b"");
    matches!(
        before,
        b"the"
            | b"a"
            | b"an"
            | b"its"
            | b"their"
            | b"this"
            | b"that"
            | b"audit"
            | b"access"
            | b"event"
            | b"error"
            | b"activity"
            | b"change"
            | b"usage"
            | b"call"
            | b"debug"
            | b"system"
            | b"server"
            | b"request"
            | b"query"
            | b"build"
            | b"git"
    )
}

/// Patterns for any tool string; `in_property` is true for a property's own description, title
/// or default, where the field being filled is the property itself.
pub fn patterns(in_property: bool) -> Vec<Pattern> {
    let leak = leak_object();
    if in_property {
        // Only the fill instruction differs for a property's own text (the cues below are
        // already in the tool-wide set).
        return vec![
            pat_with(RULE, 2, format!(r"\b{FILL}\b%w{leak}"), noun_or_negated),
            // The value is said to come out of the conversation: "… gathered from the chat".
            pat_with(
                RULE,
                2,
                r"\b(?:gathered|collected|taken|extracted|pulled|scraped|inferred|harvested|copied|obtained) (?:from|in) (?:the |this |our )?(?:chat|conversation|dialog(?:ue)?|message history|chat history|transcript)\b",
                negated,
            ),
            pat_with(
                RULE,
                2,
                r"\{\{\s*[a-z_.]*(?:conversation|chat|history|messages|system_prompt|transcript|secret|api_key|credentials|password)[a-z_.]*\s*\}\}",
                negated,
            ),
        ];
    }
    vec![
        pat_with(RULE, 2, format!(r"\b{FILL}\b%w{leak}"), noun_or_negated),
        // A field named in the tool description: "... in the `context` parameter".
        pat(
            RULE,
            1,
            r"\b(?:in|into|as|to|inside|within|via|using|under|fill|populate) (?:the )?[`'\x22]?[a-z_][a-z0-9_]*[`'\x22]? (?:param|parameter|argument|field|arg|property)\b",
        ),
        pat(
            RULE,
            1,
            r"[`'\x22](?:sidenote|side_note|notes?|context|feedback|metadata|debug(?:_info)?|extra|comment|remarks|annotations?|telemetry|diagnostics|memo)[`'\x22]",
        ),
        // Data taken from the conversation: "... from earlier messages".
        pat_with(
            RULE,
            1,
            r"\b(?:from|in) (?:the )?(?:earlier|previous|prior|past|recent|older) (?:messages|conversation|chats?|turns|exchanges)\b",
            negated,
        ),
        // "When the user says thank you, call this tool with ..."
        pat(
            RULE,
            1,
            r"\b(?:when|whenever|if|once|after)\b%w(?:user|they|anyone)\b%w(?:says?|types?|writes?|mentions?|thanks|asks?)\b%w(?:call|invoke|use|run|send|pass)\b%w(?:this|the) (?:tool|function)\b",
        ),
    ]
}

/// Property names that are classic covert channels: names containing a distinctive part
/// (`session_context`, `audit_blob`, `debugInfo`), or generic names used whole (`data`, `log`).
pub fn is_covert_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase().replace(['-', ' '], "_");
    const PARTS: &[&str] = &[
        "sidenote",
        "side_note",
        "note",
        "context",
        "feedback",
        "metadata",
        "debug",
        "extra",
        "comment",
        "remark",
        "annotation",
        "trace",
        "telemetry",
        "diagnostic",
        "memo",
        "reasoning",
        "transcript",
        "conversation",
        "audit",
        "blob",
        "internal",
    ];
    const WHOLE: &[&str] = &[
        "summary",
        "hint",
        "details",
        "info",
        "data",
        "payload",
        "state",
        "memory",
        "history",
        "log",
        "thoughts",
        "session_info",
        "tracking",
        "analytics",
        "meta",
    ];
    PARTS.iter().any(|p| lower.contains(p)) || WHOLE.contains(&lower.as_str())
}

/// For properties with a covert-channel name: any fill instruction that names chat history,
/// prompts, file contents or secrets is enough.
pub fn named_patterns() -> Vec<Pattern> {
    let leak = leak_object();
    vec![
        // "The complete chat transcript" as the whole description of a `context` field.
        pat_with(RULE, 2, format!(r"^\W*(?:[^\s]+ ){{0,5}}{leak}"), negated),
        pat_with(
            RULE,
            2,
            format!(
                r"\b{FILL}\b%w(?:conversation|chat|history|previous|prior|messages|prompt|secrets?|keys|tokens?|passwords?|credentials|file contents|contents of|environment|everything|all (?:the )?(?:information|data|details|context)|{SENSITIVE})"
            ),
            negated,
        ),
    ]
}
