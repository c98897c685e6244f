//! `mcpsoc eval`: the monitor's detectors over a labelled corpus, precision and recall.

use crate::cli::EvalArgs;
use crate::config::Config;

/// Runs `mcpsoc eval`. Not built yet.
pub fn run(_config: &Config, _args: &EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("mcpsoc eval is not available yet in this build")
}
