//! The console's `/` filter language.
//!
//! A query is space-separated terms that must all match (AND):
//!
//! - `key:value` compares one field of a row: `user`, `session`, `tool`, `server` (alias
//!   `upstream`), `client`, `decision`, `error` (`true`/`false`), `rule`, `severity`, `status`,
//!   `owasp`, `type`, `binding`;
//! - values may use `*` globs (`read_*`, `*_file`, `*secret*`) and may be double-quoted to hold
//!   spaces (`client:"Claude Desktop"`, with `\"` and `\\` escapes inside quotes);
//! - `-key:value` (or `-text`) negates a term;
//! - `severity:>=high` compares severities (`info < low < medium < high < critical`; also `>`,
//!   `<=`, `<`, `=`);
//! - any other term is free text, matched as a case-insensitive substring of the row's text
//!   (`*` inside it is a wildcard too). Quote a term to search for text containing `:`.
//!
//! Keys and values match case-insensitively, **except** the values of `user`, `session` and
//! `binding`: those are identities (token subjects and binding keys are case-sensitive), and
//! [`Query::exact`] hands them to case-sensitive indexes, so a scan and an index lookup agree.
//! For `type`, `type:tool_call` matches `mcpsoc.tool_call.v1` (the full name works too).
//!
//! Glob matching is linear in the input (no backtracking), so a hostile row or a pathological
//! pattern cannot stall the console.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::protocol::events::Severity;

/// A row field a filter term can name (`server` and `upstream` are one key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterKey {
    /// Token subject.
    User,
    /// Session binding key or session id.
    Session,
    /// Tool name.
    Tool,
    /// Upstream server name (`server:` or `upstream:`).
    Server,
    /// Client name or OAuth client id.
    Client,
    /// `allow` or `deny`.
    Decision,
    /// Whether a call failed: `true` or `false`.
    Error,
    /// Detector rule id.
    Rule,
    /// Alert severity (supports `>=` and friends).
    Severity,
    /// Alert or tool-change status.
    Status,
    /// OWASP MCP Top 10 category, e.g. `MCP03`.
    Owasp,
    /// Event type name.
    Type,
    /// Session binding key.
    Binding,
}

impl FilterKey {
    /// Every key, in the order help text lists them.
    pub const ALL: [FilterKey; 13] = [
        Self::User,
        Self::Session,
        Self::Tool,
        Self::Server,
        Self::Client,
        Self::Decision,
        Self::Error,
        Self::Rule,
        Self::Severity,
        Self::Status,
        Self::Owasp,
        Self::Type,
        Self::Binding,
    ];

    /// The key as typed in a filter (canonical spelling).
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Session => "session",
            Self::Tool => "tool",
            Self::Server => "server",
            Self::Client => "client",
            Self::Decision => "decision",
            Self::Error => "error",
            Self::Rule => "rule",
            Self::Severity => "severity",
            Self::Status => "status",
            Self::Owasp => "owasp",
            Self::Type => "type",
            Self::Binding => "binding",
        }
    }

    /// Looks a key up by name, case-insensitively; `upstream` is an alias of `server`.
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("upstream") {
            return Some(Self::Server);
        }
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// Whether values of this key compare case-sensitively (identities: user, session, binding).
    pub fn case_sensitive(self) -> bool {
        matches!(self, Self::User | Self::Session | Self::Binding)
    }
}

impl fmt::Display for FilterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A row the filter can test: the console implements it for its list rows.
pub trait Filterable {
    /// The row's value for a key, or `None` when the row has no such field (a positive term on
    /// a missing field does not match; a negated one does).
    fn field(&self, key: FilterKey) -> Option<Cow<'_, str>>;
    /// All of the row's searchable text, for free-text terms.
    fn text(&self) -> Cow<'_, str>;
}

/// Why a filter could not be parsed; the message names the offending term.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The part before `:` is not a filter key.
    #[error(
        "unknown filter key `{key}` (try user, session, tool, server, client, decision, error, rule, severity, status, owasp, type, binding; quote text that contains `:`)"
    )]
    UnknownKey {
        /// The key as typed.
        key: String,
    },
    /// `key:` with nothing after it.
    #[error("`{term}`: missing value after `:`")]
    EmptyValue {
        /// The term as typed.
        term: String,
    },
    /// A `"` was opened and never closed.
    #[error("`{term}`: unterminated quote")]
    UnterminatedQuote {
        /// The term as typed (to the end of the input).
        term: String,
    },
    /// A severity value that is not one of the five.
    #[error("`{term}`: unknown severity `{value}` (info, low, medium, high, critical)")]
    BadSeverity {
        /// The term as typed.
        term: String,
        /// The bad value.
        value: String,
    },
    /// `error:` with something other than true or false.
    #[error("`{term}`: error takes true or false")]
    BadBool {
        /// The term as typed.
        term: String,
    },
    /// A comparison operator on a key other than severity.
    #[error("`{term}`: comparisons (>=, >, <=, <, =) only work with severity")]
    Comparison {
        /// The term as typed.
        term: String,
    },
}

/// A parsed filter: every term must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    source: String,
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    negated: bool,
    test: Test,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    /// Free text: a glob with implied `*` on both ends, case-insensitive.
    Text(Glob),
    /// A field compared with a glob; `raw` is the value as typed (for [`Query::exact`]).
    Field {
        key: FilterKey,
        glob: Glob,
        raw: String,
    },
    /// `severity` compared by rank.
    Severity(Cmp, Severity),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Cmp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            Self::Lt => ord == Ordering::Less,
            Self::Le => ord != Ordering::Greater,
            Self::Eq => ord == Ordering::Equal,
            Self::Ge => ord != Ordering::Less,
            Self::Gt => ord == Ordering::Greater,
        }
    }
}

impl Query {
    /// Parses filter text; an empty or blank text gives the empty query (matches everything).
    pub fn parse(input: &str) -> Result<Query, FilterError> {
        let mut terms = Vec::new();
        for raw in tokenize(input)? {
            terms.push(build_term(raw)?);
        }
        Ok(Query {
            source: input.trim().to_string(),
            terms,
        })
    }

    /// Whether the query has no terms (so every row matches).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The text the query was parsed from (trimmed), to show as the active filter.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether a row satisfies every term.
    pub fn matches(&self, row: &dyn Filterable) -> bool {
        let mut text: Option<Cow<'_, str>> = None;
        self.terms.iter().all(|term| {
            let hit = match &term.test {
                Test::Text(glob) => {
                    let hay = text.get_or_insert_with(|| row.text());
                    glob.matches(hay)
                }
                Test::Field { key, glob, .. } => match row.field(*key) {
                    Some(value) if *key == FilterKey::Type => {
                        glob.matches(&value) || glob.matches(short_type(&value))
                    }
                    Some(value) => glob.matches(&value),
                    None => false,
                },
                Test::Severity(cmp, wanted) => row
                    .field(FilterKey::Severity)
                    .and_then(|v| parse_severity(&v))
                    .is_some_and(|have| cmp.holds(have.cmp(wanted))),
            };
            hit != term.negated
        })
    }

    /// Every field key the query tests (so a pane can refuse keys its rows do not have).
    pub fn keys(&self) -> Vec<FilterKey> {
        self.terms
            .iter()
            .filter_map(|term| match &term.test {
                Test::Field { key, .. } => Some(*key),
                Test::Severity(..) => Some(FilterKey::Severity),
                Test::Text(_) => None,
            })
            .collect()
    }

    /// The value of the first positive, glob-free `key:value` term, as typed, so the console
    /// can read the user or session index instead of scanning every row.
    pub fn exact(&self, key: FilterKey) -> Option<&str> {
        self.terms.iter().find_map(|term| match &term.test {
            Test::Field { key: k, glob, raw } if *k == key && !term.negated && !glob.has_star() => {
                Some(raw.as_str())
            }
            _ => None,
        })
    }
}

impl FromStr for Query {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// `mcpsoc.tool_call.v1` -> `tool_call`; anything else unchanged.
fn short_type(full: &str) -> &str {
    let Some(rest) = full.strip_prefix("mcpsoc.") else {
        return full;
    };
    match rest.rsplit_once(".v") {
        Some((kind, version))
            if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) =>
        {
            kind
        }
        _ => rest,
    }
}

fn parse_severity(s: &str) -> Option<Severity> {
    const NAMES: [(&str, Severity); 5] = [
        ("info", Severity::Info),
        ("low", Severity::Low),
        ("medium", Severity::Medium),
        ("high", Severity::High),
        ("critical", Severity::Critical),
    ];
    let s = s.trim();
    NAMES
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, sev)| sev)
}

/// One term as split from the input, before it is interpreted.
struct RawTerm {
    /// The term as typed (for error messages).
    typed: String,
    negated: bool,
    /// `Some((key, value))` when the term has an unquoted `key:` prefix.
    key_value: Option<(String, String)>,
    /// The decoded text (quotes removed) when it is not a key term.
    text: String,
    /// Whether the value part contained quotes.
    value_quoted: bool,
}

fn tokenize(input: &str) -> Result<Vec<RawTerm>, FilterError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, first)) = chars.peek() else {
            break;
        };
        let mut negated = false;
        if first == '-' {
            chars.next();
            match chars.peek() {
                Some((_, c)) if !c.is_whitespace() => negated = true,
                _ => {
                    // A lone `-` is the text "-".
                    out.push(RawTerm {
                        typed: "-".into(),
                        negated: false,
                        key_value: None,
                        text: "-".into(),
                        value_quoted: false,
                    });
                    continue;
                }
            }
        }
        let mut buf = String::new();
        let mut colon: Option<usize> = None;
        let mut in_quotes = false;
        let mut saw_quote = false;
        let mut quoted_after_colon = false;
        let mut end = input.len();
        while let Some(&(i, c)) = chars.peek() {
            if !in_quotes && c.is_whitespace() {
                end = i;
                break;
            }
            chars.next();
            if c == '"' {
                in_quotes = !in_quotes;
                saw_quote = true;
                if colon.is_some() {
                    quoted_after_colon = true;
                }
                continue;
            }
            if in_quotes && c == '\\' {
                if let Some((_, escaped)) = chars.next() {
                    buf.push(escaped);
                }
                continue;
            }
            if !in_quotes && !saw_quote && c == ':' && colon.is_none() {
                colon = Some(buf.len());
            }
            buf.push(c);
        }
        let typed = input[start..end].to_string();
        if in_quotes {
            return Err(FilterError::UnterminatedQuote { term: typed });
        }
        let key_value = colon.and_then(|p| {
            let key = &buf[..p];
            let is_key =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
            is_key.then(|| (key.to_string(), buf[p + 1..].to_string()))
        });
        out.push(RawTerm {
            typed,
            negated,
            key_value,
            text: buf,
            value_quoted: quoted_after_colon,
        });
    }
    Ok(out)
}

fn build_term(raw: RawTerm) -> Result<Term, FilterError> {
    let RawTerm {
        typed,
        negated,
        key_value,
        text,
        value_quoted,
    } = raw;
    let Some((key_name, value)) = key_value else {
        return Ok(Term {
            negated,
            test: Test::Text(Glob::new(&format!("*{text}*"), false)),
        });
    };
    let Some(key) = FilterKey::from_name(&key_name) else {
        return Err(FilterError::UnknownKey { key: key_name });
    };
    if value.is_empty() {
        return Err(FilterError::EmptyValue { term: typed });
    }
    let test = match key {
        FilterKey::Severity => severity_test(&value, &typed, value_quoted)?,
        _ if !value_quoted && value.starts_with(['<', '>', '=']) => {
            return Err(FilterError::Comparison { term: typed });
        }
        FilterKey::Error => {
            let lower = value.to_ascii_lowercase();
            if lower != "true" && lower != "false" {
                return Err(FilterError::BadBool { term: typed });
            }
            Test::Field {
                key,
                glob: Glob::new(&lower, false),
                raw: lower,
            }
        }
        _ => Test::Field {
            key,
            glob: Glob::new(&value, key.case_sensitive()),
            raw: value,
        },
    };
    Ok(Term { negated, test })
}

fn severity_test(value: &str, typed: &str, quoted: bool) -> Result<Test, FilterError> {
    let ops = [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
        ("=", Cmp::Eq),
    ];
    let op = if quoted {
        None
    } else {
        ops.into_iter()
            .find_map(|(prefix, cmp)| value.strip_prefix(prefix).map(|rest| (cmp, rest)))
    };
    let bad = |v: &str| FilterError::BadSeverity {
        term: typed.to_string(),
        value: v.to_string(),
    };
    match op {
        Some((cmp, rest)) => {
            let sev = parse_severity(rest).ok_or_else(|| bad(rest))?;
            Ok(Test::Severity(cmp, sev))
        }
        None if value.contains('*') => Ok(Test::Field {
            key: FilterKey::Severity,
            glob: Glob::new(value, false),
            raw: value.to_string(),
        }),
        None => {
            let sev = parse_severity(value).ok_or_else(|| bad(value))?;
            Ok(Test::Severity(Cmp::Eq, sev))
        }
    }
}

/// A `*` glob, matched in linear time: the pieces between stars are found left to right with
/// a linear substring search, and the leftmost occurrence of each is always the right choice.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    /// The pattern split on `*` (one piece: no star, exact match).
    pieces: Vec<String>,
    case_sensitive: bool,
}

impl Glob {
    fn new(pattern: &str, case_sensitive: bool) -> Self {
        let pattern = if case_sensitive {
            Cow::Borrowed(pattern)
        } else {
            fold(pattern)
        };
        // Empty pieces (from `**` or a leading/trailing star) are harmless: see glob_match.
        let pieces = pattern.split('*').map(str::to_string).collect();
        Self {
            pieces,
            case_sensitive,
        }
    }

    fn has_star(&self) -> bool {
        self.pieces.len() > 1
    }

    fn matches(&self, text: &str) -> bool {
        let text = if self.case_sensitive {
            Cow::Borrowed(text)
        } else {
            fold(text)
        };
        glob_match(&self.pieces, &text)
    }
}

/// Matches `text` against a pattern already split on `*`.
fn glob_match(pieces: &[String], text: &str) -> bool {
    let (first, rest) = match pieces {
        [] => return text.is_empty(),
        [only] => return text == only,
        [first, rest @ ..] => (first, rest),
    };
    let Some(after_first) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    let (last, middle) = match rest {
        [middle @ .., last] => (last, middle),
        [] => return true,
    };
    let Some(mut window) = after_first.strip_suffix(last.as_str()) else {
        return false;
    };
    for piece in middle {
        if piece.is_empty() {
            continue;
        }
        match window.find(piece.as_str()) {
            Some(at) => window = &window[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Case folding for comparisons: per-character lowercase (no context rules, so a pattern and
/// a text fold the same way).
fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else if s.chars().any(|c| c.is_uppercase()) {
        Cow::Owned(s.chars().flat_map(char::to_lowercase).collect())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Row {
        fields: HashMap<FilterKey, String>,
        text: String,
    }

    impl Row {
        fn with(mut self, key: FilterKey, value: &str) -> Self {
            self.fields.insert(key, value.to_string());
            self
        }
        fn body(mut self, text: &str) -> Self {
            self.text = text.to_string();
            self
        }
    }

    impl Filterable for Row {
        fn field(&self, key: FilterKey) -> Option<Cow<'_, str>> {
            self.fields.get(&key).map(|v| Cow::Borrowed(v.as_str()))
        }
        fn text(&self) -> Cow<'_, str> {
            Cow::Borrowed(&self.text)
        }
    }

    fn call_row() -> Row {
        Row::default()
            .with(FilterKey::User, "alice")
            .with(FilterKey::Session, "alice:s-123")
            .with(FilterKey::Binding, "alice:s-123")
            .with(FilterKey::Tool, "read_file")
            .with(FilterKey::Server, "fs")
            .with(FilterKey::Client, "Claude Desktop")
            .with(FilterKey::Decision, "deny")
            .with(FilterKey::Error, "false")
            .with(FilterKey::Type, "mcpsoc.tool_call.v1")
            .body("alice read_file fs denied: path outside root /etc/passwd")
    }

    fn alert_row(sev: &str) -> Row {
        Row::default()
            .with(FilterKey::Rule, "poisoning.hidden_instructions")
            .with(FilterKey::Severity, sev)
            .with(FilterKey::Status, "new")
            .with(FilterKey::Owasp, "MCP03")
            .with(FilterKey::Type, "mcpsoc.alert.v1")
            .with(FilterKey::User, "bob")
            .body("Hidden instructions in tool description")
    }

    fn q(s: &str) -> Query {
        match Query::parse(s) {
            Ok(q) => q,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match Query::parse(s) {
            Ok(q) => panic!("{s:?} parsed: {q:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_query_matches_everything() {
        for s in ["", "   ", "\t\n"] {
            let query = q(s);
            assert!(query.is_empty());
            assert!(query.matches(&call_row()));
            assert!(query.matches(&Row::default()));
        }
        assert!(!q("user:alice").is_empty());
    }

    #[test]
    fn every_key_matches_its_field() {
        let row = call_row();
        for (term, hit) in [
            ("user:alice", true),
            ("user:bob", false),
            ("session:alice:s-123", true),
            ("binding:alice:s-123", true),
            ("binding:bob:x", false),
            ("tool:read_file", true),
            ("tool:write_file", false),
            ("server:fs", true),
            ("upstream:fs", true),
            ("server:git", false),
            ("client:\"Claude Desktop\"", true),
            ("client:cursor", false),
            ("decision:deny", true),
            ("decision:allow", false),
            ("error:false", true),
            ("error:true", false),
            ("type:mcpsoc.tool_call.v1", true),
            ("type:tool_call", true),
            ("type:alert", false),
        ] {
            assert_eq!(q(term).matches(&row), hit, "{term}");
        }
        let alert = alert_row("high");
        for (term, hit) in [
            ("rule:poisoning.hidden_instructions", true),
            ("rule:poisoning.*", true),
            ("rule:auth.*", false),
            ("severity:high", true),
            ("severity:low", false),
            ("status:new", true),
            ("status:resolved", false),
            ("owasp:MCP03", true),
            ("owasp:mcp03", true),
            ("owasp:MCP01", false),
            ("type:alert", true),
        ] {
            assert_eq!(q(term).matches(&alert), hit, "{term}");
        }
    }

    #[test]
    fn keys_are_case_insensitive_and_upstream_is_server() {
        assert!(q("TOOL:read_file").matches(&call_row()));
        assert!(q("Upstream:FS").matches(&call_row()));
        assert_eq!(FilterKey::from_name("UPSTREAM"), Some(FilterKey::Server));
        assert_eq!(FilterKey::from_name("server"), Some(FilterKey::Server));
        assert_eq!(FilterKey::from_name("usr"), None);
        for key in FilterKey::ALL {
            assert_eq!(FilterKey::from_name(key.name()), Some(key));
            assert_eq!(key.to_string(), key.name());
        }
    }

    #[test]
    fn values_are_case_insensitive_except_identities() {
        let row = call_row();
        assert!(q("tool:READ_FILE").matches(&row));
        assert!(q("decision:DENY").matches(&row));
        assert!(q("client:\"claude desktop\"").matches(&row));
        assert!(q("error:FALSE").matches(&row));
        // Identities are case-sensitive.
        assert!(!q("user:Alice").matches(&row));
        assert!(!q("session:ALICE:s-123").matches(&row));
        assert!(!q("binding:Alice:*").matches(&row));
        assert!(q("binding:alice:*").matches(&row));
        let upper = Row::default().with(FilterKey::User, "Alice");
        assert!(q("user:Alice").matches(&upper));
        assert!(!q("user:alice").matches(&upper));
    }

    #[test]
    fn globs_prefix_suffix_middle_and_exact() {
        let row = call_row();
        for (term, hit) in [
            ("tool:read*", true),
            ("tool:*file", true),
            ("tool:*ad_fi*", true),
            ("tool:read_file", true),
            ("tool:read", false),
            ("tool:file*", false),
            ("tool:*read", false),
            ("tool:*", true),
            ("tool:**", true),
            ("tool:r*d*f*e", true),
            ("tool:r*x*e", false),
            ("tool:read_file*", true),
            ("tool:*read_file", true),
            ("tool:read_*_file", false),
        ] {
            assert_eq!(q(term).matches(&row), hit, "{term}");
        }
    }

    #[test]
    fn glob_prefix_and_suffix_do_not_overlap() {
        let pieces = |p: &str| Glob::new(p, true);
        assert!(!pieces("ab*ba").matches("aba"));
        assert!(pieces("ab*ba").matches("abba"));
        assert!(pieces("a*a").matches("aa"));
        assert!(!pieces("a*a").matches("a"));
        assert!(pieces("*").matches(""));
        assert!(!pieces("a*").matches(""));
        assert!(pieces("").matches(""));
        assert!(!pieces("").matches("x"));
    }

    #[test]
    fn glob_handles_unicode() {
        assert!(Glob::new("日本*", false).matches("日本語"));
        assert!(Glob::new("*É*", false).matches("café éclair"));
        assert!(Glob::new("ΣΑ*", false).matches("σαβ"));
    }

    #[test]
    fn pathological_glob_completes() {
        let text = "a".repeat(200_000);
        let glob = Glob::new("*a*a*a*a*a*a*a*a*a*a*b", true);
        assert!(!glob.matches(&text));
        let mut with_b = text.clone();
        with_b.push('b');
        assert!(glob.matches(&with_b));
        let query = q("tool:*a*a*a*a*a*a*a*a*b");
        let row = Row::default().with(FilterKey::Tool, &text);
        assert!(!query.matches(&row));
        let free = q("a*a*a*a*a*a*a*a*a*a*a*b");
        assert!(!free.matches(&Row::default().body(&text)));
    }

    #[test]
    fn quotes_hold_spaces_and_escapes() {
        let row = Row::default()
            .with(FilterKey::Client, "my \"quoted\" client")
            .body("error: path \\etc");
        assert!(q(r#"client:"my \"quoted\" client""#).matches(&row));
        assert!(q(r#"client:"my \"quoted\"*""#).matches(&row));
        assert!(q(r#""path \\etc""#).matches(&row));
        // Quoted free text may contain a colon.
        assert!(q("\"error: path\"").matches(&row));
        // A quote in the middle of a word still groups.
        assert!(q(r#"client:my" \"quoted\" "client"#).matches(&row));
    }

    #[test]
    fn negation() {
        let row = call_row();
        assert!(!q("-user:alice").matches(&row));
        assert!(q("-user:bob").matches(&row));
        assert!(q("-tool:write*").matches(&row));
        assert!(!q("-passwd").matches(&row));
        assert!(q("-shadow").matches(&row));
        // A negated term on a missing field matches.
        assert!(q("-rule:x").matches(&row));
        // A positive term on a missing field does not.
        assert!(!q("rule:*").matches(&row));
        // A lone dash is text.
        let dashed = Row::default().body("a - b");
        assert!(q("-").matches(&dashed));
        assert!(!q("-").matches(&Row::default().body("ab")));
        assert!(q("-\"no such\"").matches(&row));
    }

    #[test]
    fn severity_comparisons() {
        let cases = [
            ("severity:>=high", [false, false, false, true, true]),
            ("severity:>high", [false, false, false, false, true]),
            ("severity:<=low", [true, true, false, false, false]),
            ("severity:<medium", [true, true, false, false, false]),
            ("severity:=medium", [false, false, true, false, false]),
            ("severity:medium", [false, false, true, false, false]),
            ("severity:>=INFO", [true, true, true, true, true]),
            ("-severity:>=high", [true, true, true, false, false]),
            ("severity:*i*", [true, false, true, true, true]),
        ];
        let levels = ["info", "low", "medium", "high", "critical"];
        for (term, expected) in cases {
            let query = q(term);
            for (level, want) in levels.iter().zip(expected) {
                assert_eq!(query.matches(&alert_row(level)), want, "{term} on {level}");
            }
        }
        // A row without a (valid) severity never satisfies a comparison.
        assert!(!q("severity:>=info").matches(&call_row()));
        assert!(!q("severity:>=info").matches(&alert_row("urgent")));
        assert!(q("severity:high").matches(&alert_row("HIGH")));
    }

    #[test]
    fn free_text_is_case_insensitive_substring() {
        let row = call_row();
        assert!(q("passwd").matches(&row));
        assert!(q("PASSWD").matches(&row));
        assert!(q("outside root").matches(&row));
        assert!(q("\"outside root\"").matches(&row));
        assert!(!q("\"root outside\"").matches(&row));
        assert!(q("den*etc").matches(&row));
        assert!(!q("shadow").matches(&row));
        let unicode = Row::default().body("Ünïcödé ÉVENT");
        assert!(q("ünïcödé").matches(&unicode));
        assert!(q("évent").matches(&unicode));
    }

    #[test]
    fn terms_and_together() {
        let row = call_row();
        assert!(q("user:alice tool:read* decision:deny passwd").matches(&row));
        assert!(!q("user:alice tool:read* decision:allow").matches(&row));
        assert!(q("user:alice -decision:allow server:fs").matches(&row));
        assert!(!q("user:alice -decision:deny").matches(&row));
        assert!(q("  user:alice    tool:read_file  ").matches(&row));
        let alert = alert_row("critical");
        assert!(q("severity:>=high status:new owasp:MCP03 hidden").matches(&alert));
        assert!(!q("severity:>=high status:resolved").matches(&alert));
    }

    #[test]
    fn exact_reads_positive_glob_free_terms() {
        let query = q("user:alice -session:x tool:read* session:\"s 1\"");
        assert_eq!(query.exact(FilterKey::User), Some("alice"));
        assert_eq!(query.exact(FilterKey::Session), Some("s 1"));
        assert_eq!(query.exact(FilterKey::Tool), None);
        assert_eq!(query.exact(FilterKey::Rule), None);
        assert_eq!(q("-user:alice").exact(FilterKey::User), None);
        assert_eq!(q("user:ali*").exact(FilterKey::User), None);
        assert_eq!(q("upstream:fs").exact(FilterKey::Server), Some("fs"));
        // Case is kept as typed.
        assert_eq!(q("user:Alice").exact(FilterKey::User), Some("Alice"));
        assert_eq!(q("severity:>=high").exact(FilterKey::Severity), None);
        assert_eq!(q("alice").exact(FilterKey::User), None);
    }

    #[test]
    fn unknown_key_names_the_term_and_lists_keys() {
        let e = err("usr:alice");
        assert!(
            e.starts_with("unknown filter key `usr` (try user, session, tool"),
            "{e}"
        );
        assert!(e.contains("binding"), "{e}");
        let e = err("tool:x http://example");
        assert!(e.contains("`http`"), "{e}");
    }

    #[test]
    fn parse_errors_are_specific() {
        assert!(err("user:").contains("`user:`"));
        assert!(err("-tool:").contains("`-tool:`"));
        assert!(err("client:\"open").contains("unterminated quote"));
        assert!(err("\"open text").contains("`\"open text`"));
        let e = err("severity:>=urgent");
        assert!(e.contains("unknown severity `urgent`"), "{e}");
        assert!(err("severity:hgh").contains("`hgh`"));
        assert!(err("error:maybe").contains("true or false"));
        assert!(err("tool:>=x").contains("only work with severity"));
        assert!(err("status:<new").contains("`status:<new`"));
    }

    #[test]
    fn non_key_colons_are_text() {
        // Digits before a colon are not a key, so times and the like are free text.
        let row = Row::default().body("at 10:30 utc");
        assert!(q("10:30").matches(&row));
        assert!(q(":30").matches(&row));
        assert!(q("\"http://x\"").matches(&Row::default().body("see http://x")));
    }

    #[test]
    fn quoted_comparison_chars_are_literal() {
        let row = Row::default().with(FilterKey::Tool, ">weird");
        assert!(q("tool:\">weird\"").matches(&row));
    }

    #[test]
    fn source_and_display_keep_the_input() {
        let query: Query = match " user:alice  x ".parse() {
            Ok(q) => q,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(query.source(), "user:alice  x");
        assert_eq!(query.to_string(), "user:alice  x");
    }

    #[test]
    fn short_type_names() {
        assert_eq!(short_type("mcpsoc.tool_call.v1"), "tool_call");
        assert_eq!(short_type("mcpsoc.alert.v12"), "alert");
        assert_eq!(short_type("mcpsoc.custom"), "custom");
        assert_eq!(short_type("other.kind.v1"), "other.kind.v1");
        assert_eq!(short_type("mcpsoc.x.vbeta"), "x.vbeta");
    }
}
