//! Session bindings. 2025-11-25: the gateway issues its own session ids (256 bits from the OS
//! random source), maps each to the upstream's, and binds it to the token subject
//! (`<user>:<session>`). 2026-07-28 has no sessions: a binding per subject and client
//! (`<user>:<client>`) records who calls from where. Sessions never authenticate: a session id
//! is only looked up after the token was validated, and only for the subject it belongs to.
//!
//! Revoking a binding revokes what the token behind it proves, not the binding's name: the
//! token's issuer, subject and client id (`client_id`/`azp`), or, when the token proves no
//! client, the subject itself. Every token of that identity issued at or before the revocation
//! is refused on both revisions, whatever client name a request declares, and every live
//! session of it ends.

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
    /// The token's issuer.
    pub issuer: String,
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
    /// The token's issuer.
    pub issuer: String,
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
    /// Identities revoked: tokens of them issued at or before `before` are refused.
    revocations: Vec<Revocation>,
}

/// What a revocation cuts off (see the module comment).
pub use crate::protocol::events::Revocation;

/// Whether a revocation covers a token's identity and age.
pub fn revocation_covers(
    r: &Revocation,
    issuer: &str,
    subject: &str,
    client_id: Option<&str>,
    issued_at: Option<i64>,
) -> bool {
    r.subject == subject
        && r.issuer.as_deref().is_none_or(|i| i == issuer)
        && r.client_id.as_deref().is_none_or(|c| Some(c) == client_id)
        && issued_at.is_none_or(|iat| iat <= r.before)
}

/// The binding key of a session (`<user>:<session>`) or a stateless binding
/// (`<user>:<client>`). Each part has `%` and `:` percent-encoded, so the one `:` between them
/// is unambiguous: `a:b` + `c` and `a` + `b:c` are different keys.
pub fn session_key(user: &str, session_id: &str) -> String {
    format!("{}:{}", key_part(user), key_part(session_id))
}

fn key_part(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['%', ':']) {
        text.replace('%', "%25").replace(':', "%3A").into()
    } else {
        text.into()
    }
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
        (issuer, user): (&str, &str),
        client: ClientInfo,
        version: &str,
    ) -> Session {
        let now = Instant::now();
        Session {
            id,
            upstream_session,
            upstream: upstream.to_string(),
            user: user.to_string(),
            issuer: issuer.to_string(),
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

    /// Revokes a binding by key (`user:session` or `user:client`): the identity its token
    /// proves is revoked for every token issued at or before `now_unix`, and every live session
    /// of that identity ends. Returns the events: the named binding's first (carrying the
    /// revocation in `revokes`), then one per other session it cut off; `None` when no such
    /// binding is live (see [`Sessions::revoke_identity`] for one known from the log).
    pub fn revoke(&self, binding: &str, reason: &str, now_unix: i64) -> Option<Vec<SessionEvent>> {
        let identity = {
            let inner = self.lock();
            inner
                .sessions
                .values()
                .find(|s| session_key(&s.user, &s.id) == binding)
                .map(|s| (s.issuer.clone(), s.user.clone(), s.client.client_id.clone()))
                .or_else(|| {
                    inner
                        .bindings
                        .get(binding)
                        .map(|b| (b.issuer.clone(), b.user.clone(), b.client.client_id.clone()))
                })
        };
        let (issuer, subject, client_id) = identity?;
        let revocation = Revocation {
            issuer: Some(issuer),
            subject,
            client_id,
            before: now_unix,
        };
        Some(self.revoke_identity(revocation, binding, reason))
    }

    /// Revokes an identity: records it and ends every live session and binding it covers.
    /// Returns their events, the one of `named` (if live) first and carrying the revocation.
    pub fn revoke_identity(
        &self,
        revocation: Revocation,
        named: &str,
        reason: &str,
    ) -> Vec<SessionEvent> {
        let mut inner = self.lock();
        let covered = |issuer: &str, user: &str, client: Option<&str>| {
            revocation_covers(&revocation, issuer, user, client, None)
        };
        let mut events = Vec::new();
        let cut: Vec<String> = inner
            .sessions
            .values()
            .filter(|s| covered(&s.issuer, &s.user, s.client.client_id.as_deref()))
            .map(|s| s.id.clone())
            .collect();
        for id in cut {
            if let Some(session) = inner.sessions.remove(&id) {
                let key = session_key(&session.user, &session.id);
                inner.revoked_sessions.insert(id, key.clone());
                let event = event_of(
                    &session,
                    SessionChange::Revoked,
                    None,
                    Some(reason.to_string()),
                );
                events.push((key == named, event));
            }
        }
        let stateless: Vec<(String, Binding)> = inner
            .bindings
            .iter()
            .filter(|(_, b)| covered(&b.issuer, &b.user, b.client.client_id.as_deref()))
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        for (key, b) in stateless {
            inner.bindings.remove(&key);
            let event = binding_event(&key, &b, SessionChange::Revoked, Some(reason.to_string()));
            events.push((key == named, event));
        }
        if !inner.revocations.contains(&revocation) {
            inner.revocations.push(revocation.clone());
        }
        // The named binding first, carrying what was revoked.
        events.sort_by_key(|(is_named, _)| !*is_named);
        let mut events: Vec<SessionEvent> = events.into_iter().map(|(_, e)| e).collect();
        if let Some(first) = events.first_mut()
            && first.binding == named
        {
            first.revokes = Some(revocation);
        }
        events
    }

    /// Restores a revocation found in the store at start.
    pub fn restore_revocation(&self, revocation: Revocation) {
        let mut inner = self.lock();
        if !inner.revocations.contains(&revocation) {
            inner.revocations.push(revocation);
        }
    }

    /// The revocation that refuses this token, if any.
    pub fn revocation_for(
        &self,
        issuer: &str,
        subject: &str,
        client_id: Option<&str>,
        issued_at: Option<i64>,
    ) -> Option<Revocation> {
        self.lock()
            .revocations
            .iter()
            .find(|r| revocation_covers(r, issuer, subject, client_id, issued_at))
            .cloned()
    }

    /// Notes a stateless call; returns a `bound` event the first time the binding is seen.
    pub fn touch_binding(
        &self,
        (issuer, user): (&str, &str),
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
                issuer: issuer.to_string(),
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
        revokes: None,
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
        revokes: None,
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
            ("https://idp", "alice"),
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
            ("https://idp", "alice"),
            ClientInfo::default(),
            "2025-11-25",
        ));
        assert!(t.revoke("alice:sid", "test", 100).is_some());
        assert_eq!(
            t.use_session("sid", "alice", "fs", true).unwrap_err().0,
            SessionRefusal::Revoked
        );
        // The token proved no client: all of alice's older tokens are refused.
        assert!(
            t.revocation_for("https://idp", "alice", Some("any"), Some(100))
                .is_some()
        );
        assert!(
            t.revocation_for("https://idp", "alice", None, None)
                .is_some()
        );
        assert!(
            t.revocation_for("https://idp", "alice", None, Some(101))
                .is_none()
        );
        assert!(
            t.revocation_for("https://other", "alice", None, Some(1))
                .is_none()
        );
        let bob = ClientInfo {
            name: "cli".into(),
            version: None,
            client_id: Some("bob-app".into()),
        };
        let (key, first) = t.touch_binding(("https://idp", "bob"), "bob-app", &bob, "fs");
        assert!(first.is_some());
        assert!(
            t.touch_binding(("https://idp", "bob"), "bob-app", &bob, "fs")
                .1
                .is_none()
        );
        let events = t.revoke(&key, "test", 1000).unwrap();
        let revokes = events[0].revokes.clone().unwrap();
        assert_eq!(revokes.client_id.as_deref(), Some("bob-app"));
        // What the token proves: bob through bob-app, under any declared name; not bob's
        // other clients.
        assert!(
            t.revocation_for("https://idp", "bob", Some("bob-app"), Some(999))
                .is_some()
        );
        assert!(
            t.revocation_for("https://idp", "bob", Some("bob-app"), None)
                .is_some()
        );
        assert!(
            t.revocation_for("https://idp", "bob", Some("bob-app"), Some(1001))
                .is_none()
        );
        assert!(
            t.revocation_for("https://idp", "bob", Some("other-app"), Some(999))
                .is_none()
        );
    }

    #[test]
    fn a_revocation_ends_every_live_session_of_the_identity() {
        let t = table();
        for id in ["s1", "s2"] {
            t.create(Sessions::new_session(
                id.into(),
                None,
                "fs",
                ("https://idp", "carol"),
                ClientInfo::default(),
                "2025-11-25",
            ));
        }
        let events = t.revoke("carol:s1", "stolen laptop", 50).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].binding, "carol:s1");
        assert!(events[0].revokes.is_some() && events[1].revokes.is_none());
        assert_eq!(
            t.use_session("s2", "carol", "fs", false).unwrap_err().0,
            SessionRefusal::Revoked
        );
    }

    #[test]
    fn binding_keys_cannot_collide() {
        assert_ne!(session_key("a:b", "c"), session_key("a", "b:c"));
        assert_eq!(session_key("alice", "sid"), "alice:sid");
        assert_eq!(session_key("a:b", "c"), "a%3Ab:c");
        assert_ne!(session_key("a%3Ab", "c"), session_key("a:b", "c"));
    }
}
