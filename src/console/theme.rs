//! Console colours and text attributes as data: views ask the [`Theme`] for a named style and
//! never hard-code colours.
//!
//! A theme file is TOML with one table per style name:
//!
//! ```toml
//! extends = "dark"          # optional: start from a built-in theme
//!
//! [deny]
//! fg = "lightred"           # named ANSI colour, "#rrggbb" or "indexed:N"
//! bg = "reset"
//! modifiers = ["bold"]      # bold, dim, italic, underlined, reversed, crossed_out
//! ```
//!
//! Styles a file does not set come from `extends`, or are the terminal default without it.
//! Unknown style names, colours and modifiers are refused with the file, line and reason. The
//! built-in themes (`dark`, `light`, `high-contrast`) use the 16 named ANSI colours only, so
//! they work on any colour terminal, and are compiled in. [`Theme::no_color`] honours
//! `NO_COLOR`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;

use crate::protocol::events::{AlertStatus, ChangeStatus, Decision, Severity};

/// The built-in themes: name and TOML text, embedded so the binary works without the files.
const BUILTINS: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// The built-in theme names.
const BUILTIN_NAMES: [&str; 3] = ["dark", "light", "high-contrast"];

/// A theme that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    /// The theme file could not be read.
    #[error("{path}: cannot read theme: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The theme file is not a valid theme.
    #[error("{file}:{line}:{column}: {reason}")]
    Invalid {
        /// The file as named to the user (a built-in is `themes/<name>.toml`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// No built-in theme, user theme or file has this name.
    #[error(
        "unknown theme `{name}` (built in: dark, light, high-contrast; {where_})",
        where_ = user_dir_hint(.searched.as_deref())
    )]
    NotFound {
        /// The name as given.
        name: String,
        /// The user themes directory that was searched, if any.
        searched: Option<PathBuf>,
    },
}

fn user_dir_hint(dir: Option<&Path>) -> String {
    match dir {
        Some(dir) => format!(
            "user themes are <name>.toml in {}; or give a path ending in .toml",
            dir.display()
        ),
        None => "or give a path ending in .toml".to_string(),
    }
}

macro_rules! theme_styles {
    ($( $(#[$doc:meta])* $field:ident ),* $(,)?) => {
        /// Every style the console uses, by purpose; loaded from a theme file.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Theme {
            /// The theme's name (built-in name or file stem), for help and status text.
            pub name: String,
            $( $(#[$doc])* pub $field: Style, )*
        }

        /// A theme file as written: every style optional, nothing else allowed.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ThemeFile {
            #[serde(default)]
            extends: Option<Spanned<String>>,
            $( #[serde(default)] $field: Option<StyleSpec>, )*
        }

        impl Theme {
            /// The names of every style a theme file may set.
            pub const STYLE_NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// A theme with every style the terminal default.
            fn blank(name: &str) -> Theme {
                Theme {
                    name: name.to_string(),
                    $( $field: Style::new(), )*
                }
            }

            /// Overrides the styles the file sets.
            fn apply(&mut self, file: ThemeFile) {
                $( if let Some(spec) = file.$field { self.$field = spec.style(); } )*
            }

            /// Every style, for whole-theme transforms.
            fn styles_mut(&mut self) -> Vec<&mut Style> {
                vec![$( &mut self.$field, )*]
            }

            /// Every style with its name.
            pub fn styles(&self) -> Vec<(&'static str, Style)> {
                vec![$( (stringify!($field), self.$field), )*]
            }
        }
    };
}

theme_styles! {
    /// Default text and background of every pane.
    base,
    /// Pane borders.
    border,
    /// Pane titles.
    title,
    /// Table header rows.
    header,
    /// The highlighted (selected) row.
    selected,
    /// Secondary text: timestamps, ids, hints.
    muted,
    /// Denied calls and rejected changes.
    deny,
    /// Failed calls and errors.
    error,
    /// Allowed calls, approvals, success.
    ok,
    /// Warnings.
    warn,
    /// Critical alerts.
    severity_critical,
    /// High alerts.
    severity_high,
    /// Medium alerts.
    severity_medium,
    /// Low alerts.
    severity_low,
    /// Informational alerts.
    severity_info,
    /// Alerts nobody has looked at.
    status_new,
    /// Alerts a responder is on.
    status_acknowledged,
    /// Resolved alerts.
    status_resolved,
    /// Tool changes awaiting approval.
    pending,
    /// Text added in a diff.
    added,
    /// Text removed in a diff.
    removed,
    /// Placeholders of invisible or control characters revealed in event text.
    hidden_char,
    /// Key names in the footer.
    footer_key,
    /// Descriptions in the footer.
    footer_text,
    /// A source that is connected.
    status_connected,
    /// A source that is reconnecting.
    status_reconnecting,
    /// A source that refused us (bad token, forbidden).
    status_refused,
    /// The marker shown while the live view is paused.
    paused_marker,
    /// The `/` filter prompt.
    filter_prompt,
    /// Key names in the help overlay.
    help_key,
    /// Descriptions in the help overlay.
    help_text,
}

impl Default for Theme {
    /// The `dark` built-in theme.
    fn default() -> Self {
        Self::builtin("dark").unwrap_or_else(|| Self::blank("dark"))
    }
}

impl Theme {
    /// The names of the built-in themes.
    pub fn builtin_names() -> &'static [&'static str] {
        &BUILTIN_NAMES
    }

    /// A built-in theme by name, or `None` if there is none of that name.
    pub fn builtin(name: &str) -> Option<Theme> {
        let (_, text) = BUILTINS.iter().find(|(n, _)| *n == name)?;
        Self::parse(text, &format!("themes/{name}.toml")).ok()
    }

    /// Where user themes live: `<config dir>/mcpsoc/themes` (e.g. `~/.config/mcpsoc/themes`).
    pub fn user_themes_dir() -> Option<PathBuf> {
        dirs::config_dir().map(|d| d.join("mcpsoc").join("themes"))
    }

    /// Loads a theme: a path ending in `.toml` is read from disk; any other name is a built-in
    /// theme or `<name>.toml` in [`Theme::user_themes_dir`].
    pub fn load(name_or_path: &str) -> Result<Theme, ThemeError> {
        Self::load_from(name_or_path, Self::user_themes_dir().as_deref())
    }

    /// [`Theme::load`] with an explicit user themes directory (`None`: built-ins and paths
    /// only).
    pub fn load_from(name_or_path: &str, user_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        let is_file = Path::new(name_or_path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        if is_file {
            return Self::read(Path::new(name_or_path));
        }
        if let Some(theme) = Self::builtin(name_or_path) {
            return Ok(theme);
        }
        let plain_name = !name_or_path.is_empty()
            && name_or_path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if let Some(dir) = user_dir.filter(|_| plain_name) {
            let path = dir.join(format!("{name_or_path}.toml"));
            if path.is_file() {
                return Self::read(&path);
            }
        }
        Err(ThemeError::NotFound {
            name: name_or_path.to_string(),
            searched: user_dir.map(Path::to_path_buf),
        })
    }

    fn read(path: &Path) -> Result<Theme, ThemeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ThemeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses theme text; `file` names it in errors, and its stem becomes the theme's name.
    pub fn parse(text: &str, file: &str) -> Result<Theme, ThemeError> {
        let invalid = |span: Option<std::ops::Range<usize>>, reason: &str| {
            let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ThemeError::Invalid {
                file: file.to_string(),
                line,
                column,
                reason: reason.trim().to_string(),
            }
        };
        let parsed: ThemeFile = toml::from_str(text).map_err(|e| invalid(e.span(), e.message()))?;
        let name = Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.to_string());
        let mut theme = match &parsed.extends {
            None => Self::blank(&name),
            Some(base) => {
                let mut theme = Self::builtin(base.get_ref()).ok_or_else(|| {
                    invalid(
                        Some(base.span()),
                        &format!(
                            "`extends` names unknown built-in theme `{}` (dark, light, high-contrast)",
                            base.get_ref()
                        ),
                    )
                })?;
                theme.name = name;
                theme
            }
        };
        theme.apply(parsed);
        Ok(theme)
    }

    /// The theme for terminals without colour (`NO_COLOR`): every foreground and background
    /// dropped, modifiers kept, and modifiers added so states still differ (selected is
    /// reversed, deny/error/critical bold, pending underlined, removed crossed out, ...).
    #[must_use]
    pub fn no_color(mut self) -> Theme {
        for style in self.styles_mut() {
            *style = Style::new()
                .add_modifier(style.add_modifier)
                .remove_modifier(style.sub_modifier);
        }
        let b = Modifier::BOLD;
        let u = Modifier::UNDERLINED;
        let r = Modifier::REVERSED;
        let d = Modifier::DIM;
        let marks = [
            (&mut self.title, b),
            (&mut self.header, b | u),
            (&mut self.selected, r),
            (&mut self.muted, d),
            (&mut self.deny, b),
            (&mut self.error, b),
            (&mut self.warn, u),
            (&mut self.severity_critical, b | r),
            (&mut self.severity_high, b),
            (&mut self.severity_medium, u),
            (&mut self.severity_info, d),
            (&mut self.status_new, b),
            (&mut self.status_acknowledged, Modifier::ITALIC),
            (&mut self.status_resolved, d),
            (&mut self.pending, u),
            (&mut self.added, b | u),
            (&mut self.removed, d | Modifier::CROSSED_OUT),
            (&mut self.hidden_char, b | r),
            (&mut self.footer_key, b),
            (&mut self.status_reconnecting, u),
            (&mut self.status_refused, b | r),
            (&mut self.paused_marker, b | r),
            (&mut self.filter_prompt, b),
            (&mut self.help_key, b),
        ];
        for (style, modifier) in marks {
            *style = style.add_modifier(modifier);
        }
        self
    }

    /// The style of an alert severity.
    pub fn severity(&self, severity: Severity) -> Style {
        match severity {
            Severity::Critical => self.severity_critical,
            Severity::High => self.severity_high,
            Severity::Medium => self.severity_medium,
            Severity::Low => self.severity_low,
            Severity::Info => self.severity_info,
        }
    }

    /// The style of an alert's triage status.
    pub fn alert_status(&self, status: AlertStatus) -> Style {
        match status {
            AlertStatus::New => self.status_new,
            AlertStatus::Acknowledged => self.status_acknowledged,
            AlertStatus::Resolved => self.status_resolved,
        }
    }

    /// The style of a tool change's status.
    pub fn change_status(&self, status: ChangeStatus) -> Style {
        match status {
            ChangeStatus::Pending => self.pending,
            ChangeStatus::Approved => self.ok,
            ChangeStatus::Rejected => self.deny,
            ChangeStatus::Blocked => self.error,
        }
    }

    /// The style of a gateway decision.
    pub fn decision(&self, decision: Decision) -> Style {
        match decision {
            Decision::Allow => self.ok,
            Decision::Deny => self.deny,
        }
    }
}

/// Whether the user asked for no colour: `NO_COLOR` set and not empty (<https://no-color.org>).
pub fn no_color_requested() -> bool {
    no_color_value(std::env::var_os("NO_COLOR"))
}

fn no_color_value(value: Option<OsString>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

/// One style as written in a theme file.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with optional fg, bg and modifiers"
)]
struct StyleSpec {
    #[serde(default)]
    fg: Option<ColorSpec>,
    #[serde(default)]
    bg: Option<ColorSpec>,
    #[serde(default)]
    modifiers: Vec<ModifierSpec>,
}

impl StyleSpec {
    fn style(&self) -> Style {
        let mut style = Style::new();
        if let Some(ColorSpec(fg)) = self.fg {
            style = style.fg(fg);
        }
        if let Some(ColorSpec(bg)) = self.bg {
            style = style.bg(bg);
        }
        for ModifierSpec(m) in &self.modifiers {
            style = style.add_modifier(*m);
        }
        style
    }
}

#[derive(Debug, Clone, Copy)]
struct ColorSpec(Color);

impl<'de> Deserialize<'de> for ColorSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_color(&text).map(ColorSpec).map_err(de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy)]
struct ModifierSpec(Modifier);

impl<'de> Deserialize<'de> for ModifierSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_modifier(&text)
            .map(ModifierSpec)
            .map_err(de::Error::custom)
    }
}

/// The named colours a theme may use (all of them work in 16-colour terminals).
const NAMED_COLORS: [(&str, Color); 17] = [
    ("black", Color::Black),
    ("red", Color::Red),
    ("green", Color::Green),
    ("yellow", Color::Yellow),
    ("blue", Color::Blue),
    ("magenta", Color::Magenta),
    ("cyan", Color::Cyan),
    ("gray", Color::Gray),
    ("darkgray", Color::DarkGray),
    ("lightred", Color::LightRed),
    ("lightgreen", Color::LightGreen),
    ("lightyellow", Color::LightYellow),
    ("lightblue", Color::LightBlue),
    ("lightmagenta", Color::LightMagenta),
    ("lightcyan", Color::LightCyan),
    ("white", Color::White),
    ("reset", Color::Reset),
];

fn parse_color(text: &str) -> Result<Color, String> {
    let unknown = || {
        format!(
            "unknown colour `{text}` (use a name such as red, lightblue or reset, \"#rrggbb\", or \"indexed:N\" with N 0-255)"
        )
    };
    if let Some(hex) = text.strip_prefix('#') {
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| unknown());
        return Ok(Color::Rgb(channel(0)?, channel(2)?, channel(4)?));
    }
    if let Some(index) = text.strip_prefix("indexed:") {
        return index
            .trim()
            .parse::<u8>()
            .map(Color::Indexed)
            .map_err(|_| unknown());
    }
    let normal: String = text
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .replace("grey", "gray");
    NAMED_COLORS
        .iter()
        .find(|(name, _)| *name == normal)
        .map(|(_, color)| *color)
        .ok_or_else(unknown)
}

fn parse_modifier(text: &str) -> Result<Modifier, String> {
    match text.to_ascii_lowercase().as_str() {
        "bold" => Ok(Modifier::BOLD),
        "dim" => Ok(Modifier::DIM),
        "italic" => Ok(Modifier::ITALIC),
        "underlined" | "underline" => Ok(Modifier::UNDERLINED),
        "reversed" | "reverse" => Ok(Modifier::REVERSED),
        "crossed_out" | "strikethrough" => Ok(Modifier::CROSSED_OUT),
        "hidden" => Err("modifier `hidden` is not allowed: it would hide event text".to_string()),
        "slow_blink" | "rapid_blink" | "blink" => {
            Err(format!("modifier `{text}` is not allowed (blinking)"))
        }
        _ => Err(format!(
            "unknown modifier `{text}` (bold, dim, italic, underlined, reversed, crossed_out)"
        )),
    }
}

/// 1-based line and column of a byte offset (as `config.rs` reports them).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn parse(text: &str) -> Theme {
        match Theme::parse(text, "test.toml") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    fn parse_err(text: &str, file: &str) -> String {
        match Theme::parse(text, file) {
            Ok(t) => panic!("parsed: {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn builtin(name: &str) -> Theme {
        match Theme::builtin(name) {
            Some(t) => t,
            None => panic!("builtin {name} missing or invalid"),
        }
    }

    #[test]
    fn every_builtin_parses() {
        assert_eq!(Theme::builtin_names(), &["dark", "light", "high-contrast"]);
        for (name, text) in BUILTINS {
            if let Err(e) = Theme::parse(text, &format!("themes/{name}.toml")) {
                panic!("{e}");
            }
            let theme = builtin(name);
            assert_eq!(theme.name, name);
        }
        assert!(Theme::builtin("nope").is_none());
        assert_eq!(Theme::default(), builtin("dark"));
    }

    #[test]
    fn builtins_set_every_style_with_named_colours_only() {
        let names: Vec<&str> = NAMED_COLORS.iter().map(|(n, _)| *n).collect();
        let wanted: BTreeSet<&str> = Theme::STYLE_NAMES.iter().copied().collect();
        for (name, text) in BUILTINS {
            let table: toml::Table = match toml::from_str(text) {
                Ok(t) => t,
                Err(e) => panic!("{name}: {e}"),
            };
            let keys: BTreeSet<&str> = table.keys().map(String::as_str).collect();
            assert_eq!(keys, wanted, "{name} must set every style and nothing else");
            for (style, spec) in &table {
                for side in ["fg", "bg"] {
                    if let Some(colour) = spec.get(side) {
                        let colour = colour.as_str().unwrap_or("<not a string>");
                        assert!(names.contains(&colour), "{name}.{style}.{side} = {colour}");
                    }
                }
            }
        }
    }

    #[test]
    fn builtins_keep_states_apart() {
        for name in Theme::builtin_names() {
            let t = builtin(name);
            assert_ne!(t.added, t.removed, "{name}");
            assert_ne!(t.deny, t.ok, "{name}");
            assert_ne!(t.selected, t.base, "{name}");
            assert_ne!(t.hidden_char, t.base, "{name}");
            let sev: BTreeSet<String> = [
                t.severity_critical,
                t.severity_high,
                t.severity_medium,
                t.severity_low,
                t.severity_info,
            ]
            .iter()
            .map(|s| format!("{s:?}"))
            .collect();
            assert_eq!(sev.len(), 5, "{name}: severities must differ");
        }
    }

    #[test]
    fn parses_colours_and_modifiers() {
        let t = parse(
            "[deny]\nfg = \"lightred\"\nbg = \"black\"\nmodifiers = [\"bold\", \"underlined\"]\n\
             [ok]\nfg = \"#00ff7f\"\n[warn]\nfg = \"indexed:208\"\n[muted]\nfg = \"dark-grey\"\n",
        );
        assert_eq!(
            t.deny,
            Style::new()
                .fg(Color::LightRed)
                .bg(Color::Black)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        );
        assert_eq!(t.ok, Style::new().fg(Color::Rgb(0, 0xff, 0x7f)));
        assert_eq!(t.warn, Style::new().fg(Color::Indexed(208)));
        assert_eq!(t.muted, Style::new().fg(Color::DarkGray));
        assert_eq!(t.base, Style::new());
        assert_eq!(t.name, "test");
    }

    #[test]
    fn every_colour_name_parses() {
        for (name, colour) in NAMED_COLORS {
            assert_eq!(parse_color(name), Ok(colour));
        }
        assert_eq!(parse_color("LightBlue"), Ok(Color::LightBlue));
        assert_eq!(parse_color("light_blue"), Ok(Color::LightBlue));
        assert_eq!(parse_color("grey"), Ok(Color::Gray));
        assert_eq!(parse_color("indexed:0"), Ok(Color::Indexed(0)));
        for bad in [
            "purple",
            "#12345",
            "#gggggg",
            "indexed:256",
            "indexed:x",
            "",
            "#ｆｆ0000",
        ] {
            assert!(parse_color(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_modifier_parses_and_dangerous_ones_are_refused() {
        for (name, m) in [
            ("bold", Modifier::BOLD),
            ("dim", Modifier::DIM),
            ("italic", Modifier::ITALIC),
            ("underlined", Modifier::UNDERLINED),
            ("reversed", Modifier::REVERSED),
            ("crossed_out", Modifier::CROSSED_OUT),
        ] {
            assert_eq!(parse_modifier(name), Ok(m));
        }
        assert!(
            parse_modifier("hidden")
                .unwrap_err()
                .contains("not allowed")
        );
        assert!(
            parse_modifier("slow_blink")
                .unwrap_err()
                .contains("not allowed")
        );
        assert!(
            parse_modifier("sparkly")
                .unwrap_err()
                .contains("unknown modifier")
        );
    }

    #[test]
    fn unknown_style_name_error_names_file_and_line() {
        let e = parse_err(
            "[base]\nfg = \"white\"\n\n[severity_urgent]\nfg = \"red\"\n",
            "mine.toml",
        );
        assert!(e.starts_with("mine.toml:4:"), "{e}");
        assert!(e.contains("severity_urgent"), "{e}");
    }

    #[test]
    fn unknown_colour_error_names_file_and_line() {
        let e = parse_err(
            "[base]\nfg = \"white\"\n[deny]\nfg = \"purple\"\n",
            "/home/u/.config/mcpsoc/themes/mine.toml",
        );
        assert!(
            e.starts_with("/home/u/.config/mcpsoc/themes/mine.toml:4:"),
            "{e}"
        );
        assert!(e.contains("unknown colour `purple`"), "{e}");
    }

    #[test]
    fn other_errors_name_line() {
        let e = parse_err("[ok]\nfg = \"green\"\nmodifiers = [\"hidden\"]\n", "t.toml");
        assert!(e.starts_with("t.toml:3:"), "{e}");
        assert!(e.contains("hidden"), "{e}");
        let e = parse_err("[ok]\nfgg = \"green\"\n", "t.toml");
        assert!(e.starts_with("t.toml:2:"), "{e}");
        assert!(e.contains("fgg"), "{e}");
        let e = parse_err("ok = \"green\"\n", "t.toml");
        assert!(e.starts_with("t.toml:1:"), "{e}");
        let e = parse_err("[ok\n", "t.toml");
        assert!(e.starts_with("t.toml:1:"), "{e}");
        let e = parse_err("\n\nextends = \"solarized\"\n", "t.toml");
        assert!(e.starts_with("t.toml:3:"), "{e}");
        assert!(e.contains("solarized"), "{e}");
    }

    #[test]
    fn extends_starts_from_a_builtin() {
        let t = parse("extends = \"light\"\n[deny]\nfg = \"magenta\"\n");
        let light = builtin("light");
        assert_eq!(t.deny, Style::new().fg(Color::Magenta));
        assert_eq!(t.ok, light.ok);
        assert_eq!(t.selected, light.selected);
        assert_eq!(t.name, "test");
    }

    #[test]
    fn no_color_strips_colours_and_keeps_states_apart() {
        for name in Theme::builtin_names() {
            let t = builtin(name).no_color();
            for (style_name, style) in t.styles() {
                assert_eq!(style.fg, None, "{name}.{style_name}");
                assert_eq!(style.bg, None, "{name}.{style_name}");
            }
            assert!(t.selected.add_modifier.contains(Modifier::REVERSED));
            assert!(t.deny.add_modifier.contains(Modifier::BOLD));
            assert!(t.error.add_modifier.contains(Modifier::BOLD));
            assert!(t.severity_critical.add_modifier.contains(Modifier::BOLD));
            assert!(t.pending.add_modifier.contains(Modifier::UNDERLINED));
            assert_ne!(t.added, t.removed);
            assert_ne!(t.added, t.base);
            assert_ne!(t.removed, t.base);
            assert_ne!(t.deny, t.ok);
            assert_ne!(t.hidden_char, t.base);
            assert_ne!(t.status_connected, t.status_reconnecting);
            assert_ne!(t.status_reconnecting, t.status_refused);
            let distinct = |styles: &[Style]| {
                styles
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<BTreeSet<_>>()
                    .len()
            };
            assert_eq!(
                distinct(&[
                    t.severity_critical,
                    t.severity_high,
                    t.severity_medium,
                    t.severity_low,
                    t.severity_info
                ]),
                5,
                "{name}"
            );
            assert_eq!(
                distinct(&[t.status_new, t.status_acknowledged, t.status_resolved]),
                3,
                "{name}"
            );
        }
    }

    #[test]
    fn no_color_keeps_modifiers() {
        let t = parse("[ok]\nfg = \"green\"\nmodifiers = [\"italic\"]\n").no_color();
        assert_eq!(t.ok, Style::new().add_modifier(Modifier::ITALIC));
    }

    #[test]
    fn no_color_env_value() {
        assert!(!no_color_value(None));
        assert!(!no_color_value(Some(OsString::new())));
        assert!(no_color_value(Some(OsString::from("1"))));
        assert!(no_color_value(Some(OsString::from("0"))));
        // Reading the real variable must not panic whatever it holds.
        let _ = no_color_requested();
    }

    #[test]
    fn load_builtin_user_theme_and_path() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let user = dir.path().join("mine.toml");
        let write = |path: &Path, text: &str| {
            if let Err(e) = std::fs::write(path, text) {
                panic!("{e}");
            }
        };
        write(&user, "extends = \"dark\"\n[ok]\nfg = \"blue\"\n");
        let t = match Theme::load_from("mine", Some(dir.path())) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(t.name, "mine");
        assert_eq!(t.ok, Style::new().fg(Color::Blue));

        let by_path = match Theme::load_from(&user.display().to_string(), None) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(by_path, t);

        let light = match Theme::load_from("light", Some(dir.path())) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(light, builtin("light"));

        // Builtins win over a user file of the same name.
        write(&dir.path().join("dark.toml"), "[ok]\nfg = \"blue\"\n");
        assert_eq!(
            Theme::load_from("dark", Some(dir.path())).ok(),
            Some(builtin("dark"))
        );

        let bad = dir.path().join("bad.toml");
        write(&bad, "[ok]\nfg = \"nope\"\n");
        let e = Theme::load_from("bad", Some(dir.path()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("bad.toml:2:"), "{e}");
    }

    #[test]
    fn load_errors() {
        let e = Theme::load_from("solarized", Some(Path::new("/nonexistent/themes")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("unknown theme `solarized`"), "{e}");
        assert!(e.contains("/nonexistent/themes"), "{e}");
        let e = Theme::load_from("/nonexistent/x.toml", None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("/nonexistent/x.toml: cannot read theme"),
            "{e}"
        );
        // Names are never paths: traversal is refused as unknown.
        assert!(matches!(
            Theme::load_from("../etc/passwd", Some(Path::new("/tmp"))),
            Err(ThemeError::NotFound { .. })
        ));
    }

    #[test]
    fn severity_and_status_helpers() {
        let t = builtin("dark");
        assert_eq!(t.severity(Severity::Critical), t.severity_critical);
        assert_eq!(t.severity(Severity::Info), t.severity_info);
        assert_eq!(t.alert_status(AlertStatus::New), t.status_new);
        assert_eq!(t.change_status(ChangeStatus::Pending), t.pending);
        assert_eq!(t.change_status(ChangeStatus::Rejected), t.deny);
        assert_eq!(t.decision(Decision::Allow), t.ok);
        assert_eq!(t.decision(Decision::Deny), t.deny);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("é\nx", 1), (1, 1));
        assert_eq!(line_col("x", 99), (1, 2));
    }
}
