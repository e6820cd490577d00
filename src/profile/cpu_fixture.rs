//! Test-only CPU profiles written by hand: a frame by its name, a stack as
//! `root;…;leaf` with its samples, a profile of stacks at 997 Hz where one
//! sample is 1 ms of CPU.

use super::cpu::{CpuProfile, Frame, Stack};
use crate::units::Nanos;

/// A frame with only its function's name.
pub fn frame(function: &str) -> Frame {
    Frame {
        function: function.into(),
        file: None,
        line: None,
        module: None,
        inlined: false,
    }
}

/// A stack of thread `w` from `root;…;leaf`.
pub fn stack(names: &str, samples: u64) -> Stack {
    Stack {
        thread: "w".into(),
        frames: names.split(';').map(frame).collect(),
        samples,
    }
}

/// A profile of `stacks`, one sample per millisecond of CPU and wall time.
pub fn profile(stacks: Vec<Stack>) -> CpuProfile {
    let n = stacks.iter().map(|s| s.samples).sum();
    CpuProfile {
        frequency: 997,
        sampler: Default::default(),
        sampler_note: None,
        samples: n,
        cpu_time: Nanos(n * 1_000_000),
        wall_time: Nanos(n * 1_000_000),
        started_unix_nanos: 0,
        stacks,
    }
}
