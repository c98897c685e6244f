//! The console role: the terminal UI over gateway and monitor streams (issue: the console).

/// Runs the console. Not built yet: refuses with a clear message.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!(
        "mcpsoc console is not available yet in this build; try `mcpsoc replay` and `mcpsoc export`"
    )
}
