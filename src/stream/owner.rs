//! A command owner that carries out commands by recording the resulting state change as a new
//! event (an approved change, an acknowledged alert, a revoked session). `mcpsoc replay` uses it
//! so that a console can be tried end to end before a gateway exists; the monitor uses the same
//! rules for its alerts.

use tokio::sync::mpsc;

use super::{CommandRequest, Publisher};
use crate::protocol::events::{AlertStatus, ChangeStatus, SessionChange};
use crate::protocol::{Command, CommandError, CommandErrorCode, Envelope, EventData};
use crate::store::StateRecord;

/// Answers every command from `inbox` by appending the state change it asks for.
pub async fn record_state_changes(publisher: Publisher, mut inbox: mpsc::Receiver<CommandRequest>) {
    while let Some(request) = inbox.recv().await {
        let result = apply(&publisher, &request.by, request.command).await;
        let _ = request.reply.send(result);
    }
}

fn decoded(record: Option<StateRecord>) -> Option<EventData> {
    record
        .and_then(|r| Envelope::parse(&r.json).ok())
        .map(|e| e.decode())
}

fn not_found(what: String) -> CommandError {
    CommandError::new(CommandErrorCode::NotFound, what)
}

fn io(e: impl std::fmt::Display) -> CommandError {
    CommandError::new(CommandErrorCode::Unavailable, e.to_string())
}

/// Builds and appends the event a command implies; returns a one-line result.
pub async fn apply(
    publisher: &Publisher,
    by: &str,
    command: Command,
) -> Result<String, CommandError> {
    let (event, result) = next_state(publisher, by, command)?;
    let sequence = publisher.publish(event).await.map_err(io)?;
    Ok(format!("{result} (event {sequence})"))
}

fn next_state(
    publisher: &Publisher,
    by: &str,
    command: Command,
) -> Result<(EventData, String), CommandError> {
    let store = publisher.store();
    let source = publisher.source();
    let (upstream, tool, status, reason) = match command {
        Command::ApproveToolChange {
            upstream,
            tool,
            reason,
            ..
        } => (upstream, tool, ChangeStatus::Approved, reason),
        Command::RejectToolChange {
            upstream,
            tool,
            reason,
            ..
        } => (upstream, tool, ChangeStatus::Rejected, reason),
        Command::BlockTool {
            upstream,
            tool,
            reason,
        } => (upstream, tool, ChangeStatus::Blocked, reason),
        Command::RevokeSession { binding, reason } => {
            let record = store.session(source, &binding).map_err(io)?;
            let Some(EventData::Session(mut session)) = decoded(record) else {
                return Err(not_found(format!("no session binding {binding}")));
            };
            session.change = SessionChange::Revoked;
            session.reason = Some(reason.unwrap_or_else(|| format!("revoked by {by}")));
            return Ok((
                EventData::Session(session),
                format!("session {binding} revoked"),
            ));
        }
        Command::AcknowledgeAlert { alert_id, note } => {
            return alert_status(publisher, by, alert_id, note, AlertStatus::Acknowledged);
        }
        Command::ResolveAlert { alert_id, note } => {
            return alert_status(publisher, by, alert_id, note, AlertStatus::Resolved);
        }
        Command::SuppressFinding(_) | Command::Unsuppress { .. } => {
            return Err(CommandError::new(
                CommandErrorCode::Unsupported,
                "suppressions belong to the monitor: send this to the monitor's stream",
            ));
        }
    };
    let record = store.tool_change(source, &upstream, &tool).map_err(io)?;
    let Some(EventData::ToolChange(mut change)) = decoded(record) else {
        return Err(not_found(format!("no tool {upstream}/{tool}")));
    };
    change.status = status;
    change.decided_by = Some(by.to_string());
    change.reason = reason;
    let verb = match status {
        ChangeStatus::Approved => "approved",
        ChangeStatus::Rejected => "rejected",
        _ => "blocked",
    };
    let result = format!("{upstream}/{tool} {verb} at {}", change.proposed_hash);
    Ok((EventData::ToolChange(change), result))
}

fn alert_status(
    publisher: &Publisher,
    by: &str,
    alert_id: String,
    note: Option<String>,
    status: AlertStatus,
) -> Result<(EventData, String), CommandError> {
    let record = publisher
        .store()
        .alert(publisher.source(), &alert_id)
        .map_err(io)?;
    let Some(EventData::Alert(mut alert)) = decoded(record) else {
        return Err(not_found(format!("no alert {alert_id}")));
    };
    alert.status = status;
    alert.by = Some(by.to_string());
    alert.note = note;
    let verb = if status == AlertStatus::Resolved {
        "resolved"
    } else {
        "acknowledged"
    };
    Ok((EventData::Alert(alert), format!("alert {alert_id} {verb}")))
}
