//! The monitor role: detectors over gateway streams, publishing alerts (issue: the monitor).

pub mod eval;

/// Runs the monitor. Not built yet: refuses with a clear message.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("mcpsoc monitor is not available yet in this build")
}
