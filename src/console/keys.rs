//! Key bindings as data: every bindable action has default keys, and `[console.keys]` in
//! mcpsoc.toml can rebind any of them (`approve = "A"` or `quit = ["q", "ctrl-c"]`).

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key can ask for. Pane-specific actions only apply in their pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAction {
    /// Leave the console.
    Quit,
    /// Next pane.
    NextPane,
    /// Previous pane.
    PrevPane,
    /// Tool calls pane.
    PaneCalls,
    /// Alerts pane.
    PaneAlerts,
    /// Sessions pane.
    PaneSessions,
    /// Approvals pane.
    PaneApprovals,
    /// Other (unknown event types) pane.
    PaneOther,
    /// Selection up.
    Up,
    /// Selection down.
    Down,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// First row.
    Top,
    /// Last loaded row.
    Bottom,
    /// Stop following live events.
    Pause,
    /// Follow live events again (newest first).
    Follow,
    /// Open the detail view.
    Open,
    /// Close an overlay, clear the filter.
    Back,
    /// Start typing a filter.
    Filter,
    /// Start typing a command (`:theme dark`).
    Command,
    /// Show every key of this pane.
    Help,
    /// Jump to the selected row's session.
    JumpSession,
    /// Jump to the selected alert's tool change.
    JumpTool,
    /// Acknowledge the selected alert.
    Acknowledge,
    /// Resolve the selected alert.
    Resolve,
    /// Contain the selected alert: revoke its session or block its tool (asks first).
    Contain,
    /// Suppress the selected alert's finding as a false positive (this rule on this tool at
    /// this hash, or on this user; asks first).
    Suppress,
    /// Approve the selected pending change at the hash on screen.
    Approve,
    /// Reject the selected pending change (asks for an optional reason).
    Reject,
    /// Revoke the selected session (asks first).
    Revoke,
}

impl KeyAction {
    /// Every action with its config name, default keys and help text.
    pub const ALL: [(
        KeyAction,
        &'static str,
        &'static [&'static str],
        &'static str,
    ); 29] = [
        (Self::Quit, "quit", &["q", "ctrl-c"], "quit"),
        (Self::NextPane, "next_pane", &["tab"], "next pane"),
        (Self::PrevPane, "prev_pane", &["backtab"], "previous pane"),
        (Self::PaneCalls, "pane_calls", &["1"], "tool calls pane"),
        (Self::PaneAlerts, "pane_alerts", &["2"], "alerts pane"),
        (Self::PaneSessions, "pane_sessions", &["3"], "sessions pane"),
        (
            Self::PaneApprovals,
            "pane_approvals",
            &["4"],
            "approvals pane",
        ),
        (Self::Up, "up", &["up", "k"], "move up"),
        (Self::Down, "down", &["down", "j"], "move down"),
        (Self::PageUp, "page_up", &["pageup", "ctrl-u"], "page up"),
        (
            Self::PageDown,
            "page_down",
            &["pagedown", "ctrl-d"],
            "page down",
        ),
        (Self::Top, "top", &["home", "g"], "first row"),
        (Self::Bottom, "bottom", &["G"], "last row"),
        (Self::Pause, "pause", &["p"], "pause following"),
        (Self::Follow, "follow", &["f", "end"], "follow live"),
        (Self::Open, "open", &["enter"], "open detail"),
        (Self::Back, "back", &["esc"], "close / clear filter"),
        (Self::Filter, "filter", &["/"], "filter"),
        (Self::Command, "command", &[":"], "command line"),
        (Self::Help, "help", &["?"], "help"),
        (Self::JumpSession, "jump_session", &["s"], "jump to session"),
        (Self::JumpTool, "jump_tool", &["t"], "jump to tool change"),
        (
            Self::Acknowledge,
            "acknowledge",
            &["a"],
            "acknowledge alert",
        ),
        (Self::Resolve, "resolve", &["r"], "resolve alert"),
        (
            Self::Contain,
            "contain",
            &["c"],
            "contain: revoke session / block tool",
        ),
        (
            Self::Suppress,
            "suppress",
            &["S"],
            "suppress this finding (false positive)",
        ),
        (Self::Approve, "approve", &["a"], "approve change"),
        (Self::Reject, "reject", &["x"], "reject change"),
        (Self::Revoke, "revoke", &["x"], "revoke session"),
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, ..)| *a == self)
            .map(|(_, n, ..)| *n)
            .unwrap_or("?")
    }

    /// One-line help.
    pub fn help(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, ..)| *a == self)
            .map(|(.., h)| *h)
            .unwrap_or("")
    }
}

/// A bad key binding in the configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// No such action.
    #[error("unknown key action `{0}` in [console.keys]")]
    UnknownAction(String),
    /// Unreadable key.
    #[error("cannot read key `{0}` (examples: a, A, ctrl-x, enter, esc, tab, f5, pageup)")]
    BadKey(String),
}

/// A key as bound: code plus modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl / Alt (Shift is folded into the character).
    pub modifiers: KeyModifiers,
}

impl Key {
    /// Parses `a`, `A`, `ctrl-c`, `alt-x`, `enter`, `f5`, ...
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let bad = || KeyError::BadKey(text.to_string());
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                modifiers |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                modifiers |= KeyModifiers::ALT;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest.to_ascii_lowercase().as_str() {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "space" => KeyCode::Char(' '),
            "backspace" => KeyCode::Backspace,
            "delete" => KeyCode::Delete,
            f if f.len() > 1 && f.starts_with('f') => {
                KeyCode::F(f[1..].parse().map_err(|_| bad())?)
            }
            _ => {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => KeyCode::Char(c),
                    _ => return Err(bad()),
                }
            }
        };
        Ok(Key { code, modifiers })
    }

    /// The key of a terminal key event.
    pub fn of(event: &KeyEvent) -> Key {
        let modifiers = event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        Key {
            code: event.code,
            modifiers,
        }
    }

    /// How help shows it.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            s.push_str("ctrl-");
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            s.push_str("alt-");
        }
        match self.code {
            KeyCode::Char(' ') => s.push_str("space"),
            KeyCode::Char(c) => s.push(c),
            KeyCode::Enter => s.push_str("enter"),
            KeyCode::Esc => s.push_str("esc"),
            KeyCode::Tab => s.push_str("tab"),
            KeyCode::BackTab => s.push_str("shift-tab"),
            KeyCode::Up => s.push('↑'),
            KeyCode::Down => s.push('↓'),
            KeyCode::PageUp => s.push_str("pgup"),
            KeyCode::PageDown => s.push_str("pgdn"),
            KeyCode::Home => s.push_str("home"),
            KeyCode::End => s.push_str("end"),
            KeyCode::F(n) => s.push_str(&format!("f{n}")),
            other => s.push_str(&format!("{other:?}").to_lowercase()),
        }
        s
    }
}

/// The bindings in force.
#[derive(Debug, Clone)]
pub struct KeyMap {
    bindings: HashMap<KeyAction, Vec<Key>>,
}

impl Default for KeyMap {
    fn default() -> Self {
        let mut bindings = HashMap::new();
        for (action, _, keys, _) in KeyAction::ALL {
            let keys = keys.iter().filter_map(|k| Key::parse(k).ok()).collect();
            bindings.insert(action, keys);
        }
        Self { bindings }
    }
}

impl KeyMap {
    /// Defaults overridden by `[console.keys]` entries (action name to one or more keys).
    pub fn with_overrides(overrides: &HashMap<String, Vec<String>>) -> Result<Self, KeyError> {
        let mut map = Self::default();
        for (name, keys) in overrides {
            let action = KeyAction::ALL
                .iter()
                .find(|(_, n, ..)| n == name)
                .map(|(a, ..)| *a)
                .ok_or_else(|| KeyError::UnknownAction(name.clone()))?;
            let parsed = keys
                .iter()
                .map(|k| Key::parse(k))
                .collect::<Result<Vec<_>, _>>()?;
            map.bindings.insert(action, parsed);
        }
        Ok(map)
    }

    /// Whether `event` is bound to `action`.
    pub fn is(&self, action: KeyAction, event: &KeyEvent) -> bool {
        let key = Key::of(event);
        self.bindings
            .get(&action)
            .is_some_and(|keys| keys.contains(&key))
    }

    /// The first of `candidates` that `event` is bound to.
    pub fn resolve(&self, event: &KeyEvent, candidates: &[KeyAction]) -> Option<KeyAction> {
        candidates.iter().copied().find(|a| self.is(*a, event))
    }

    /// The label of an action's first key, for footers and help.
    pub fn label(&self, action: KeyAction) -> String {
        self.bindings
            .get(&action)
            .and_then(|keys| keys.first())
            .map(Key::label)
            .unwrap_or_else(|| "unbound".into())
    }

    /// All labels of an action's keys.
    pub fn labels(&self, action: KeyAction) -> String {
        self.bindings
            .get(&action)
            .map(|keys| keys.iter().map(Key::label).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn parses_keys() {
        assert_eq!(Key::parse("a").unwrap().code, KeyCode::Char('a'));
        assert_eq!(
            Key::parse("ctrl-c").unwrap().modifiers,
            KeyModifiers::CONTROL
        );
        assert_eq!(Key::parse("F5").unwrap().code, KeyCode::F(5));
        assert_eq!(Key::parse("pagedown").unwrap().code, KeyCode::PageDown);
        assert!(Key::parse("ctrl-").is_err());
        assert!(Key::parse("abc").is_err());
    }

    #[test]
    fn defaults_and_overrides() {
        let map = KeyMap::default();
        assert!(map.is(
            KeyAction::Quit,
            &press(KeyCode::Char('q'), KeyModifiers::NONE)
        ));
        assert!(map.is(
            KeyAction::Quit,
            &press(KeyCode::Char('c'), KeyModifiers::CONTROL)
        ));
        // Shift is part of the character, not a modifier.
        assert!(map.is(
            KeyAction::Bottom,
            &press(KeyCode::Char('G'), KeyModifiers::SHIFT)
        ));
        let overrides = HashMap::from([("approve".to_string(), vec!["A".to_string()])]);
        let map = KeyMap::with_overrides(&overrides).unwrap();
        assert!(!map.is(
            KeyAction::Approve,
            &press(KeyCode::Char('a'), KeyModifiers::NONE)
        ));
        assert!(map.is(
            KeyAction::Approve,
            &press(KeyCode::Char('A'), KeyModifiers::SHIFT)
        ));
        let bad = HashMap::from([("aprove".to_string(), vec!["a".to_string()])]);
        assert_eq!(
            KeyMap::with_overrides(&bad).unwrap_err(),
            KeyError::UnknownAction("aprove".into())
        );
    }

    #[test]
    fn resolve_prefers_the_first_candidate() {
        let map = KeyMap::default();
        let a = press(KeyCode::Char('a'), KeyModifiers::NONE);
        assert_eq!(
            map.resolve(&a, &[KeyAction::Approve, KeyAction::Acknowledge]),
            Some(KeyAction::Approve)
        );
        assert_eq!(
            map.resolve(&a, &[KeyAction::Acknowledge]),
            Some(KeyAction::Acknowledge)
        );
        assert_eq!(map.resolve(&a, &[KeyAction::Quit]), None);
    }
}
