//! Session bindings. 2025-11-25: the gateway issues its own session ids (256 bits from the OS
//! random source), maps each to the upstream's, and binds it to the token subject
//! (`<user>:<session>`). 2026-07-28 has no sessions: a binding per subject and client
//! (`<user>:<client>`) records who calls from where. Sessions never authenticate: a session id
//! is only looked up after the token was validated, and only for the subject it belongs to.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::TryRngCore;

use crate::protocol::events::{ClientInfo, SessionChange, SessionEvent};

/// One protocol session issued by the gateway.
#[derive(Debug, Clone)]
pub struct Session {
    /// The gateway's session id (what the client holds).
    pub id: String,
    /// The upstream's session id (never shown to the client).
    pub upstream_session: Option<String>,
    /// Upstream name.
    pub upstream: String,
    /// Token subject it is bound to.
    pub user: String,
    /// Client.
    pub client: ClientInfo,
    /// Protocol version.
    pub protocol_version: String,
    /// Created.
    pub created: DateTime<Utc>,
    created_at: Instant,
    last_seen: Instant,
    /// Calls so far.
    pub calls: u64,
    /// Refused reuse attempts.
    pub reuse_attempts: u64,
}

/// A stateless binding (2026-07-28).
#[derive(Debug, Clone)]
pub struct Binding {
    /// Subject.
    pub user: String,
    /// Client key (OAuth client id, else client name).
    pub client_key: String,
    /// Client.
    pub client: ClientInfo,
    /// Upstream last used.
    pub upstream: String,
    /// First seen.
    pub created: DateTime<Utc>,
    /// Calls.
    pub calls: u64,
}

/// Why a session id was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRefusal {
    /// Unknown (or ended) id.
    NotFound,
    /// Expired by idle timeout or lifetime.
    Expired,
    /// Revoked by a command.
    Revoked,
    /// Belongs to another subject: the binding is left untouched.
    OtherIdentity {
        /// The owner's binding key.
        binding: String,
    },
    /// Presented on another upstream's path.
    WrongUpstream,
}

/// All bindings of a gateway.
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    lifetime: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    revoked_sessions: HashMap<String, String>,
    bindings: HashMap<String, Binding>,
    /// Stateless bindings revoked, with the time: tokens issued before it are refused.
    revoked_bindings: HashMap<String, i64>,
}

/// The binding key of a session.
pub fn session_key(user: &str, session_id: &str) -> String {
    format!("{user}:{session_id}")
}

/// A new session id: 256 bits from the OS random source, base64url.
pub fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl Sessions {
    /// An empty table.
    pub fn new(idle: Duration, lifetime: Duration) -> Self {
        Self {
            idle,
            lifetime,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another request panicked mid-update; the map is still
        // usable and refusing every request would be worse.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new session and returns its event.
    pub fn create(&self, session: Session) -> SessionEvent {
        let event = event_of(&session, SessionChange::Bound, None, None);
        self.lock().sessions.insert(session.id.clone(), session);
        event
    }

    /// Builds a session record.
    pub fn new_session(
        id: String,
        upstream_session: Option<String>,
        upstream: &str,
        user: &str,
        client: ClientInfo,
        version: &str,
    ) -> Session {
        let now = Instant::now();
        Session {
            id,
            upstream_session,
            upstream: upstream.to_string(),
            user: user.to_string(),
            client,
            protocol_version: version.to_string(),
            created: Utc::now(),
            created_at: now,
            last_seen: now,
            calls: 0,
            reuse_attempts: 0,
        }
    }

    /// Looks a session up for `user` on `upstream`, counting a call when `call`. On another
    /// identity the binding is untouched except for its reuse counter, and the event to publish
    /// comes back with the refusal.
    pub fn use_session(
        &self,
        id: &str,
        user: &str,
        upstream: &str,
        call: bool,
    ) -> Result<Session, (SessionRefusal, Option<Box<SessionEvent>>)> {
        let mut inner = self.lock();
        if inner.revoked_sessions.contains_key(id) {
            return Err((SessionRefusal::Revoked, None));
        }
        let Some(session) = inner.sessions.get_mut(id) else {
            return Err((SessionRefusal::NotFound, None));
        };
        if session.user != user {
            session.reuse_attempts += 1;
            let event = event_of(
                session,
                SessionChange::ReuseRefused,
                Some(user.to_string()),
                Some("session id presented with another identity's token".into()),
            );
            let binding = session_key(&session.user, &session.id);
            return Err((
                SessionRefusal::OtherIdentity { binding },
                Some(Box::new(event)),
            ));
        }
        if session.upstream != upstream {
            return Err((SessionRefusal::WrongUpstream, None));
        }
        let now = Instant::now();
        if now.duration_since(session.last_seen) > self.idle
            || now.duration_since(session.created_at) > self.lifetime
        {
            let expired = session.clone();
            inner.sessions.remove(id);
            let event = event_of(
                &expired,
                SessionChange::Expired,
                None,
                Some("idle timeout or lifetime reached".into()),
            );
            return Err((SessionRefusal::Expired, Some(Box::new(event))));
        }
        session.last_seen = now;
        if call {
            session.calls += 1;
        }
        Ok(session.clone())
    }

    /// Ends a session (DELETE).
    pub fn end(&self, id: &str) -> Option<SessionEvent> {
        let session = self.lock().sessions.remove(id)?;
        Some(event_of(
            &session,
            SessionChange::Ended,
            None,
            Some("ended by the client".into()),
        ))
    }

    /// Revokes a binding by key (`user:session` or `user:client`); returns its event.
    pub fn revoke(&self, binding: &str, reason: &str, now_unix: i64) -> Option<SessionEvent> {
        let mut inner = self.lock();
        let session_id = inner
            .sessions
            .values()
            .find(|s| session_key(&s.user, &s.id) == binding)
            .map(|s| s.id.clone());
        if let Some(id) = session_id {
            let session = inner.sessions.remove(&id)?;
            inner.revoked_sessions.insert(id, binding.to_string());
            return Some(event_of(
                &session,
                SessionChange::Revoked,
                None,
                Some(reason.to_string()),
            ));
        }
        let stateless = inner.bindings.get(binding).cloned()?;
        inner.revoked_bindings.insert(binding.to_string(), now_unix);
        Some(binding_event(
            binding,
            &stateless,
            SessionChange::Revoked,
            Some(reason.to_string()),
        ))
    }

    /// Restores a stateless revocation found in the store at start.
    pub fn restore_revocation(&self, binding: &str, at_unix: i64) {
        self.lock()
            .revoked_bindings
            .insert(binding.to_string(), at_unix);
    }

    /// Whether a stateless binding was revoked after this token was issued (then refuse).
    pub fn revoked_for(&self, binding: &str, issued_at: Option<i64>) -> bool {
        match self.lock().revoked_bindings.get(binding) {
            None => false,
            Some(&at) => issued_at.is_none_or(|iat| iat <= at),
        }
    }

    /// Notes a stateless call; returns a `bound` event the first time the binding is seen.
    pub fn touch_binding(
        &self,
        user: &str,
        client_key: &str,
        client: &ClientInfo,
        upstream: &str,
    ) -> (String, Option<SessionEvent>) {
        let key = session_key(user, client_key);
        let mut inner = self.lock();
        let mut first = false;
        let binding = inner.bindings.entry(key.clone()).or_insert_with(|| {
            first = true;
            Binding {
                user: user.to_string(),
                client_key: client_key.to_string(),
                client: client.clone(),
                upstream: upstream.to_string(),
                created: Utc::now(),
                calls: 0,
            }
        });
        binding.calls += 1;
        binding.upstream = upstream.to_string();
        let event = first.then(|| binding_event(&key, binding, SessionChange::Bound, None));
        (key, event)
    }

    /// Activity events for every binding (published periodically with call counts).
    pub fn activity(&self) -> Vec<SessionEvent> {
        let inner = self.lock();
        let mut out: Vec<SessionEvent> = inner
            .sessions
            .values()
            .map(|s| event_of(s, SessionChange::Seen, None, None))
            .collect();
        out.extend(
            inner
                .bindings
                .iter()
                .filter(|(k, _)| !inner.revoked_bindings.contains_key(*k))
                .map(|(k, b)| binding_event(k, b, SessionChange::Seen, None)),
        );
        out
    }

    /// Removes expired sessions, returning their events.
    pub fn expire(&self) -> Vec<SessionEvent> {
        let now = Instant::now();
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .sessions
            .values()
            .filter(|s| {
                now.duration_since(s.last_seen) > self.idle
                    || now.duration_since(s.created_at) > self.lifetime
            })
            .map(|s| s.id.clone())
            .collect();
        expired
            .iter()
            .filter_map(|id| inner.sessions.remove(id))
            .map(|s| {
                event_of(
                    &s,
                    SessionChange::Expired,
                    None,
                    Some("idle timeout or lifetime reached".into()),
                )
            })
            .collect()
    }
}

fn event_of(
    s: &Session,
    change: SessionChange,
    other_user: Option<String>,
    reason: Option<String>,
) -> SessionEvent {
    SessionEvent {
        binding: session_key(&s.user, &s.id),
        change,
        user: s.user.clone(),
        session_id: Some(s.id.clone()),
        client: s.client.clone(),
        upstream: Some(s.upstream.clone()),
        protocol_version: Some(s.protocol_version.clone()),
        created: Some(crate::protocol::format_time(s.created)),
        expires: None,
        call_count: s.calls,
        reuse_attempts: s.reuse_attempts,
        other_user,
        reason,
    }
}

fn binding_event(
    key: &str,
    b: &Binding,
    change: SessionChange,
    reason: Option<String>,
) -> SessionEvent {
    SessionEvent {
        binding: key.to_string(),
        change,
        user: b.user.clone(),
        session_id: None,
        client: b.client.clone(),
        upstream: Some(b.upstream.clone()),
        protocol_version: Some(super::headers::STATELESS_VERSION.to_string()),
        created: Some(crate::protocol::format_time(b.created)),
        expires: None,
        call_count: b.calls,
        reuse_attempts: 0,
        other_user: None,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Sessions {
        Sessions::new(Duration::from_secs(60), Duration::from_secs(3600))
    }

    #[test]
    fn ids_are_long_and_distinct() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43); // 256 bits, base64url without padding
    }

    #[test]
    fn another_identity_is_refused_and_the_binding_kept() {
        let t = table();
        let s = Sessions::new_session(
            "sid".into(),
            Some("up".into()),
            "fs",
            "alice",
            ClientInfo::default(),
            "2025-11-25",
        );
        t.create(s);
        let (refusal, event) = t.use_session("sid", "mallory", "fs", true).unwrap_err();
        assert_eq!(
            refusal,
            SessionRefusal::OtherIdentity {
                binding: "alice:sid".into()
            }
        );
        let event = event.unwrap();
        assert_eq!(event.change, SessionChange::ReuseRefused);
        assert_eq!(event.other_user.as_deref(), Some("mallory"));
        assert_eq!(event.reuse_attempts, 1);
        // Alice still uses it.
        assert_eq!(t.use_session("sid", "alice", "fs", true).unwrap().calls, 1);
        assert_eq!(
            t.use_session("sid", "alice", "other", true).unwrap_err().0,
            SessionRefusal::WrongUpstream
        );
    }

    #[test]
    fn revoked_sessions_and_bindings_are_refused() {
        let t = table();
        t.create(Sessions::new_session(
            "sid".into(),
            None,
            "fs",
            "alice",
            ClientInfo::default(),
            "2025-11-25",
        ));
        assert!(t.revoke("alice:sid", "test", 100).is_some());
        assert_eq!(
            t.use_session("sid", "alice", "fs", true).unwrap_err().0,
            SessionRefusal::Revoked
        );
        let (key, first) = t.touch_binding("bob", "cli", &ClientInfo::default(), "fs");
        assert!(first.is_some());
        assert!(
            t.touch_binding("bob", "cli", &ClientInfo::default(), "fs")
                .1
                .is_none()
        );
        assert!(t.revoke(&key, "test", 1000).is_some());
        assert!(t.revoked_for(&key, Some(999)));
        assert!(t.revoked_for(&key, None));
        assert!(!t.revoked_for(&key, Some(1001)));
    }
}
