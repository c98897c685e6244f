//! The command channel: role checks, state checks against the producer's own store, hand-off to
//! the role that owns the command, and an audit event for every command, accepted or refused.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::publisher::Shared;
use crate::auth::{Role, StreamGrant};
use crate::protocol::events::{ChangeStatus, CommandAudit, CommandOutcome, ToolChange};
use crate::protocol::{Command, CommandError, CommandErrorCode, EventData};
use crate::store::NewEvent;

/// How long the owner may take to answer a command.
const OWNER_TIMEOUT: Duration = Duration::from_secs(10);

/// A command that passed the role and state checks, for its owner to carry out.
#[derive(Debug)]
pub struct CommandRequest {
    /// The subscriber's command id.
    pub id: String,
    /// Subscriber name.
    pub by: String,
    /// Its role.
    pub role: Role,
    /// What to do.
    pub command: Command,
    /// The owner's answer: a short result, or why not.
    pub reply: oneshot::Sender<Result<String, CommandError>>,
}

/// Runs one command end to end and returns the reply to send.
pub(super) async fn execute(
    shared: Arc<Shared>,
    grant: StreamGrant,
    id: String,
    command: Command,
) -> Result<String, CommandError> {
    let outcome = decide(&shared, &grant, &id, command.clone()).await;
    let audit = CommandAudit {
        command_id: id,
        action: command.action().to_string(),
        by: grant.name.clone(),
        role: grant.role.as_str().to_string(),
        outcome: if outcome.is_ok() {
            CommandOutcome::Accepted
        } else {
            CommandOutcome::Refused
        },
        code: outcome.as_ref().err().map(|e| e.code.as_str().to_string()),
        detail: Some(match &outcome {
            Ok(result) => result.clone(),
            Err(e) => e.message.clone(),
        }),
        target: command.target(),
    };
    let publisher = super::Publisher { shared };
    if let Err(e) = publisher
        .append(vec![NewEvent::from(EventData::Command(audit))])
        .await
    {
        tracing::error!(error = %e, "could not record the audit event of a command");
    }
    outcome
}

async fn decide(
    shared: &Shared,
    grant: &StreamGrant,
    id: &str,
    command: Command,
) -> Result<String, CommandError> {
    let required = command.required_role();
    if !grant.role.allows(required) {
        return Err(CommandError::new(
            CommandErrorCode::Forbidden,
            format!(
                "{} needs role {required}; {} has role {}",
                command.action(),
                grant.name,
                grant.role
            ),
        ));
    }
    check_state(shared, &command)?;
    let Some(owner) = &shared.owner else {
        return Err(CommandError::new(
            CommandErrorCode::Unsupported,
            format!(
                "source {} does not carry out commands",
                shared.options.source
            ),
        ));
    };
    let (reply, answer) = oneshot::channel();
    let request = CommandRequest {
        id: id.to_string(),
        by: grant.name.clone(),
        role: grant.role,
        command,
        reply,
    };
    let unavailable = || {
        CommandError::new(
            CommandErrorCode::Unavailable,
            "the command's owner is not running; try again",
        )
    };
    owner.send(request).await.map_err(|_| unavailable())?;
    match tokio::time::timeout(OWNER_TIMEOUT, answer).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(unavailable()),
        Err(_) => Err(CommandError::new(
            CommandErrorCode::Unavailable,
            "the command's owner did not answer within 10 s",
        )),
    }
}

/// Checks a command against the producer's own state: approvals name the hash pending now,
/// alerts and sessions exist.
fn check_state(shared: &Shared, command: &Command) -> Result<(), CommandError> {
    let store = &shared.store;
    let source = &shared.options.source;
    let io = |e: crate::store::StoreError| {
        CommandError::new(CommandErrorCode::Unavailable, e.to_string())
    };
    match command {
        Command::ApproveToolChange {
            upstream,
            tool,
            proposed_hash,
            ..
        }
        | Command::RejectToolChange {
            upstream,
            tool,
            proposed_hash,
            ..
        } => {
            let record = store.tool_change(source, upstream, tool).map_err(io)?;
            let change = record.as_ref().and_then(|r| {
                crate::protocol::Envelope::parse(&r.json)
                    .ok()
                    .and_then(|e| match e.decode() {
                        EventData::ToolChange(c) => Some(c),
                        _ => None,
                    })
            });
            match change {
                Some(ToolChange {
                    status: ChangeStatus::Pending,
                    proposed_hash: pending,
                    ..
                }) => {
                    if &pending == proposed_hash {
                        Ok(())
                    } else {
                        Err(CommandError::new(
                            CommandErrorCode::StaleHash,
                            format!(
                                "the pending definition of {upstream}/{tool} is now {pending}, not {proposed_hash}; review the new definition before deciding"
                            ),
                        ))
                    }
                }
                _ => Err(CommandError::new(
                    CommandErrorCode::NotFound,
                    format!("no pending change for {upstream}/{tool}"),
                )),
            }
        }
        Command::AcknowledgeAlert { alert_id, .. } | Command::ResolveAlert { alert_id, .. } => {
            match store.alert(source, alert_id).map_err(io)? {
                Some(_) => Ok(()),
                None => Err(CommandError::new(
                    CommandErrorCode::NotFound,
                    format!("no alert {alert_id}"),
                )),
            }
        }
        Command::RevokeSession { binding, .. } => {
            match store.session(source, binding).map_err(io)? {
                Some(_) => Ok(()),
                None => Err(CommandError::new(
                    CommandErrorCode::NotFound,
                    format!("no session binding {binding}"),
                )),
            }
        }
        // The monitor checks suppressions against its own state.
        Command::BlockTool { .. } | Command::SuppressFinding(_) | Command::Unsuppress { .. } => {
            Ok(())
        }
    }
}
