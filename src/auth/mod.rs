//! Who may do what: stream subscriber tokens and their roles.

pub mod jwks;
pub mod jwt;
mod roles;
mod stream_tokens;

pub use roles::Role;
pub use stream_tokens::{StreamGrant, TokenTable, hash_token};

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive,
/// RFC 7235); `None` for any other scheme or an empty token.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(super::bearer("Bearer abc"), Some("abc"));
        assert_eq!(super::bearer("BEARER  abc "), Some("abc"));
        assert_eq!(super::bearer("Basic abc"), None);
        assert_eq!(super::bearer("Bearer "), None);
        assert_eq!(super::bearer("Bearer"), None);
    }
}
