//! Stream tokens: configured as name, role and the token's SHA-256, never the token itself.
//!
//! A presented token is hashed and compared against every configured hash in constant time, so
//! neither the match position nor a prefix leaks through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Role;

/// One configured subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGrant {
    /// Subscriber name (shown in audit events).
    pub name: String,
    /// Granted role.
    pub role: Role,
    /// SHA-256 of the token.
    pub token_sha256: [u8; 32],
}

/// The set of subscribers a publisher accepts.
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    grants: Vec<StreamGrant>,
}

/// SHA-256 of a token, as the configuration stores it (hex).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl TokenTable {
    /// Builds a table from grants.
    pub fn new(grants: Vec<StreamGrant>) -> Self {
        Self { grants }
    }

    /// Adds the grants of another table.
    pub fn extend(&mut self, other: TokenTable) {
        self.grants.extend(other.grants);
    }

    /// Number of configured subscribers.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether no subscriber is configured (then every connection is refused).
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Finds the grant for a presented token. Every grant is compared, in constant time.
    pub fn authenticate(&self, token: &str) -> Option<&StreamGrant> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for grant in &self.grants {
            if bool::from(grant.token_sha256.ct_eq(&presented)) && found.is_none() {
                found = Some(grant);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(name: &str, role: Role, token: &str) -> StreamGrant {
        let mut h = [0u8; 32];
        h.copy_from_slice(&hex::decode(hash_token(token)).unwrap());
        StreamGrant {
            name: name.into(),
            role,
            token_sha256: h,
        }
    }

    #[test]
    fn finds_the_right_grant_and_refuses_others() {
        let table = TokenTable::new(vec![
            grant("alice", Role::Approver, "tok-a"),
            grant("bob", Role::Viewer, "tok-b"),
        ]);
        assert_eq!(
            table.authenticate("tok-b").map(|g| g.name.as_str()),
            Some("bob")
        );
        assert_eq!(
            table.authenticate("tok-a").map(|g| g.role),
            Some(Role::Approver)
        );
        assert!(table.authenticate("tok-c").is_none());
        assert!(table.authenticate("").is_none());
    }
}
