//! The advisor's result as text: what to apply, with the measured change
//! and the SQL to paste; then what did not help, failed or was skipped.

use crate::analyze::advice::{Advice, Change, Trial, TrialKind};
use crate::units::Nanos;

fn change_text(c: &Change) -> String {
    format!(
        "{} {} → {} ({:+.0} %, 95 % interval {:+.0} to {:+.0} %, {} pairs of runs)",
        c.metric,
        Nanos(c.original.round() as u64),
        Nanos(c.trial.round() as u64),
        100.0 * c.change,
        100.0 * c.low,
        100.0 * c.high,
        c.pairs
    )
}

fn paste(t: &Trial) -> String {
    match t.candidate.kind {
        TrialKind::Index => format!("{};", t.candidate.sql),
        TrialKind::Pragma => format!("{}; (on every connection)", t.candidate.sql),
    }
}

/// The advice as lines of text.
pub fn advice_text(a: &Advice) -> String {
    let mut out = String::new();
    let kept = a.kept();
    if kept.is_empty() {
        out.push_str(&format!(
            "{}: nothing to fix measurably: {} trial{} on scratch copies, none faster beyond the noise\n",
            a.workload,
            a.trials.len(),
            if a.trials.len() == 1 { "" } else { "s" }
        ));
        if a.trials.is_empty() {
            out.push_str("  (nothing to try: see the notes)\n");
        }
    } else {
        out.push_str(&format!(
            "advice for {} (measured on scratch copies):\n",
            a.workload
        ));
        for (i, t) in kept.iter().enumerate() {
            if let Some(c) = &t.change {
                out.push_str(&format!(
                    "{:>2}. {}: {} {}, measured\n      paste: {}\n      why: {}\n",
                    i + 1,
                    t.candidate.name,
                    a.workload,
                    change_text(c),
                    paste(t),
                    t.candidate.reason
                ));
            }
        }
    }
    for t in a.trials.iter().filter(|t| !t.keep) {
        match (&t.change, &t.error) {
            (_, Some(e)) => out.push_str(&format!("  failed: {}: {e}\n", t.candidate.name)),
            (Some(c), None) => out.push_str(&format!(
                "  no clear gain: {}: {}\n",
                t.candidate.name,
                change_text(c)
            )),
            (None, None) => {}
        }
    }
    for n in &a.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    out
}
