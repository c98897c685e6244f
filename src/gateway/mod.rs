//! The gateway role: the MCP security reverse proxy (issue: the gateway).

/// Runs the gateway. Not built yet: refuses with a clear message.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("mcpsoc gateway is not available yet in this build")
}
