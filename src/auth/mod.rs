//! Who may do what: stream subscriber tokens and their roles.

pub mod jwks;
pub mod jwt;
mod roles;
mod stream_tokens;

pub use roles::Role;
pub use stream_tokens::{StreamGrant, TokenTable, hash_token};
