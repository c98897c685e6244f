//! Helpers shared by the store tests. Each test binary uses a different subset.
#![allow(dead_code)]

pub mod consistency;
pub mod events;

use std::path::Path;
use std::time::Duration;

use mcpsoc::store::{Store, StoreOptions};

/// Runs `open` until it does not fail on sled's directory lock. Dropping the last handle of a
/// sled database does not release the lock at once: sled's background I/O threads hold the
/// lock file until their last write finishes. A reopen in the same process (or a child started
/// right after) can see the lock for a moment; anything else fails at once.
pub fn retry_locked<T, E: std::fmt::Display>(mut open: impl FnMut() -> Result<T, E>) -> T {
    let mut attempts = 0;
    loop {
        match open() {
            Ok(v) => return v,
            Err(e) if e.to_string().contains("could not acquire lock") && attempts < 1000 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("open failed after {attempts} retries: {e}"),
        }
    }
}

/// Opens the store in `dir`, waiting out a lock still held by a just-closed handle.
pub fn open_store(dir: &Path, options: &StoreOptions) -> Store {
    retry_locked(|| Store::open(dir, options))
}
