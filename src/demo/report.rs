//! Where the demo says what happens: one line per notable event, on stdout without the terminal
//! UI (a printer thread writes them, so no task blocks on the terminal) and always in the log.

use std::io::Write;
use std::sync::mpsc;

/// What a line is about; the label starts the line so scripts can grep for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The demo itself: addresses, setup, hints.
    Demo,
    /// A scripted incident, as it is carried out.
    Incident,
    /// What the traffic saw (a changed tool refused or working again).
    Traffic,
    /// An alert from the monitor's stream.
    Alert,
    /// A tool change from the gateway's stream: pending, approved, rejected, blocked.
    Approval,
    /// Another refusal or session event from the gateway's stream.
    Gateway,
    /// The demo's own approver link deciding (initial tools; decisions without the console).
    Approver,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Demo => "DEMO",
            Self::Incident => "INCIDENT",
            Self::Traffic => "TRAFFIC",
            Self::Alert => "ALERT",
            Self::Approval => "APPROVAL",
            Self::Gateway => "GATEWAY",
            Self::Approver => "APPROVER",
        }
    }
}

/// A cheap handle that reports lines; clones share the printer.
#[derive(Clone)]
pub struct Report {
    printer: Option<mpsc::Sender<String>>,
}

impl Report {
    /// Lines go to stdout (and the log); the thread ends when every handle is dropped.
    pub fn stdout() -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<String>();
        let thread = std::thread::spawn(move || {
            let stdout = std::io::stdout();
            for line in rx {
                let mut out = stdout.lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        });
        (Self { printer: Some(tx) }, thread)
    }

    /// Lines go to the log only (the console owns the terminal).
    pub fn log_only() -> Self {
        Self { printer: None }
    }

    /// Reports one line; `text` is made terminal-safe first (it may quote event content).
    pub fn line(&self, kind: Kind, text: impl AsRef<str>) {
        let line = format!(
            "{} {:<8} {}",
            chrono::Utc::now().format("%H:%M:%S"),
            kind.label(),
            crate::console::sanitize::line(text.as_ref())
        );
        tracing::info!(target: "mcpsoc::demo", "{line}");
        if let Some(printer) = &self.printer {
            let _ = printer.send(line);
        }
    }
}
