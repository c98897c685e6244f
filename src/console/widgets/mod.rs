//! Rendering pieces shared by the console panes; every text they emit is sanitized.

pub mod diff;
pub mod safe;
