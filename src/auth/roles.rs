//! The three roles a stream subscriber can hold, ordered by what they may do.

use serde::{Deserialize, Serialize};

/// A subscriber's role. Each role may do everything the roles below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the stream, sends no commands.
    Viewer,
    /// Acknowledges and resolves alerts, revokes sessions, blocks tools.
    Responder,
    /// Approves and rejects tool changes, and everything a responder may do.
    Approver,
}

impl Role {
    /// Whether this role may do what `required` may.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Responder => "responder",
            Self::Approver => "approver",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Approver.allows(Role::Responder));
        assert!(Role::Responder.allows(Role::Responder));
        assert!(!Role::Viewer.allows(Role::Responder));
        assert!(!Role::Responder.allows(Role::Approver));
    }
}
