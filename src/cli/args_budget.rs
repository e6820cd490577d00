//! `profkit budget` arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::analyze;
use crate::store;

/// `profkit budget`.
#[derive(Debug, Args)]
pub struct BudgetArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BudgetCommand,
    /// Where run folders (and baselines) are.
    #[arg(long, default_value = store::defaults::OUT_DIR, global = true)]
    pub out: PathBuf,
}

/// `profkit budget init`.
#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Write a budget from measured sessions: targets = the worst measured × headroom, criticals looser.
    Init {
        /// Profile sessions, run folders or baselines of unchanged code (default: the newest session
        /// under --out); give several so the targets cover run-to-run noise.
        sessions: Vec<String>,
        /// Targets are the measured values times this (throughput: divided).
        #[arg(long, default_value_t = analyze::calibrate::defaults::HEADROOM, value_parser = parse_headroom)]
        headroom: f64,
        /// The budget file to write.
        #[arg(short = 'o', long, default_value = store::defaults::BUDGET_FILE)]
        output: PathBuf,
        /// Overwrite the file if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// Headroom: a factor of at least 1.
fn parse_headroom(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 1.0 => Ok(v),
        _ => Err(format!(
            "headroom '{s}' must be a number of at least 1 (e.g. 1.5)"
        )),
    }
}
