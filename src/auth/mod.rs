//! Who may do what: stream subscriber tokens and their roles.

mod roles;
mod stream_tokens;

pub use roles::Role;
pub use stream_tokens::{StreamGrant, TokenTable, hash_token};
