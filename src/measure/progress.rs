//! The progress bar of long measured phases.

#[cfg(feature = "progress")]
use std::sync::atomic::Ordering;
use std::sync::atomic::{AtomicBool, AtomicU64};
#[cfg(feature = "progress")]
use std::time::Duration;
use std::time::Instant;

use super::Stop;

/// A progress bar on stderr for phases longer than about a second; hidden
/// when stderr is not a terminal.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Whether to show one at all.
    pub enabled: bool,
    /// The label shown before it.
    pub label: String,
}

impl Progress {
    pub(super) fn watch<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        stop: Stop,
        start: Instant,
        done: &'scope AtomicU64,
        finished: &'scope AtomicBool,
    ) {
        use std::io::IsTerminal;
        if !self.enabled || !std::io::stderr().is_terminal() {
            return;
        }
        #[cfg(feature = "progress")]
        scope.spawn(move || self.draw(stop, start, done, finished));
        // Without the `progress` feature (indicatif), no bar.
        #[cfg(not(feature = "progress"))]
        let _ = (scope, stop, start, done, finished);
    }

    /// Draws the bar until the phase is finished.
    #[cfg(feature = "progress")]
    fn draw(&self, stop: Stop, start: Instant, done: &AtomicU64, finished: &AtomicBool) {
        {
            let mut bar: Option<indicatif::ProgressBar> = None;
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if start.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let b = bar.get_or_insert_with(|| {
                    let (len, template) = match stop {
                        Stop::Ops(n) => {
                            (n, "{msg} [{bar:30}] {pos}/{len} ops ({per_sec}, eta {eta})")
                        }
                        Stop::Duration(d) => (d.0 / 1_000_000, "{msg} [{bar:30}] {elapsed}"),
                    };
                    let b = indicatif::ProgressBar::with_draw_target(
                        Some(len),
                        indicatif::ProgressDrawTarget::stderr(),
                    );
                    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                        b.set_style(style.progress_chars("=> "));
                    }
                    b.set_message(self.label.clone());
                    b
                });
                match stop {
                    Stop::Ops(_) => b.set_position(done.load(Ordering::Relaxed)),
                    Stop::Duration(_) => b.set_position(start.elapsed().as_millis() as u64),
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        }
    }
}
