//! The per-thread `cpu-clock` sampler in both modes (stack copies and
//! signals): many start/stop cycles under busy threads, threads started
//! mid-profile, and the fallback to the process timer when the kernel
//! refuses `perf_event_open` (a seccomp filter in a child process).
//! Behaviour only: no timing is asserted.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use assert_cmd::Command;
use profkit::profile::cpu::{self, CpuOptions, SamplerChoice};
// One profiler per process, and sample counts suffer when profiled runs
// compete for the cores: the tests here run one at a time (`serial`).
use common::{json, serial};
use profkit::profile::perf::Sampler;

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime fills the timespec it is given.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Burns `d` of this thread's CPU time, or less once `stop` is set.
fn burn(d: Duration, stop: &AtomicBool) {
    let until = thread_cpu() + d;
    let mut x = 1u64;
    while thread_cpu() < until && !stop.load(Ordering::Relaxed) {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

fn with(sampler: SamplerChoice) -> CpuOptions {
    CpuOptions {
        sampler,
        ..CpuOptions::default()
    }
}

#[test]
fn a_thousand_start_stop_cycles_under_eight_busy_threads() {
    let _one = serial();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..8 {
            let stop = &stop;
            std::thread::Builder::new()
                .name(format!("busy-{t}"))
                .spawn_scoped(s, move || {
                    // Busy at the lowest priority, so that the cycles
                    // themselves are not starved of the two cores.
                    // SAFETY: setpriority on this thread's own id.
                    unsafe {
                        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
                    }
                    burn(Duration::from_secs(3600), stop)
                })
                .unwrap();
        }
        let mut sampled = BTreeMap::<String, u64>::new();
        for (choice, cycles) in [
            (SamplerChoice::PerfStack, 1000),
            (SamplerChoice::PerfSignal, 1000),
        ] {
            let options = with(choice);
            for i in 0..cycles {
                let (v, p) = cpu::profile(&options, || {
                    let mut x = i as u64;
                    for k in 0..20_000u64 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(k));
                    }
                    x
                })
                .unwrap_or_else(|e| panic!("{choice:?} cycle {i}: {e}"));
                std::hint::black_box(v);
                assert!(p.sampler.is_perf(), "{:?}", p.sampler);
                assert_eq!(p.samples, p.stacks.iter().map(|s| s.samples).sum::<u64>());
                for (t, n) in p.threads() {
                    *sampled.entry(format!("{choice:?} {t}")).or_default() += n;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        // The busy threads were sampled by both samplers over the cycles.
        for choice in ["PerfStack", "PerfSignal"] {
            let busy = sampled
                .iter()
                .filter(|(t, n)| t.starts_with(&format!("{choice} busy-")) && **n > 0)
                .count();
            assert!(busy >= 4, "{choice}: {sampled:?}");
        }
    });
}

#[test]
fn a_thread_started_mid_profile_is_sampled() {
    let _one = serial();
    for choice in [SamplerChoice::PerfStack, SamplerChoice::PerfSignal] {
        let never = AtomicBool::new(false);
        let ((), p) = cpu::profile(&with(choice), || {
            // The sampler is running well before the thread starts.
            burn(Duration::from_millis(50), &never);
            std::thread::Builder::new()
                .name("late-comer".into())
                .spawn(|| burn(Duration::from_millis(300), &AtomicBool::new(false)))
                .unwrap()
                .join()
                .unwrap();
        })
        .unwrap();
        let threads: BTreeMap<String, u64> = p.threads().into_iter().collect();
        let late = threads.get("late-comer").copied().unwrap_or(0);
        // 300 ms of CPU at 997 Hz: ~300 samples, less the watcher's first
        // interval; a thread never attached would have none.
        assert!(late >= 30, "{choice:?}: {threads:?}");
        // Its stacks reach this test's closure (unwound, not a bare leaf).
        assert!(
            p.stacks.iter().any(|s| s.thread == "late-comer"
                && s.frames.iter().any(|f| f.function.contains("burn"))),
            "{choice:?}"
        );
    }
}

/// A seccomp filter making `perf_event_open` fail with `EACCES`, as a
/// container's default profile or `perf_event_paranoid` 3 does: load the
/// syscall number, compare, return the error or allow.
fn refuse_perf_event_open() -> std::io::Result<()> {
    let ret_errno = libc::SECCOMP_RET_ERRNO | (libc::EACCES as u32 & libc::SECCOMP_RET_DATA);
    let filter = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0, // offsetof(struct seccomp_data, nr)
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_perf_event_open as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: ret_errno,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with valid arguments; the filter outlives the call
    // (the kernel copies it).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn profkit_refused(dir: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("profkit"));
    c.current_dir(dir);
    // SAFETY: the closure only calls prctl, which is async-signal-safe.
    unsafe { c.pre_exec(refuse_perf_event_open) };
    Command::from_std(c)
}

#[test]
fn a_refused_perf_event_open_falls_back_to_the_process_timer_and_says_so() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    // A count of operations, not a duration: on a loaded machine a second
    // of wall time can hold a few milliseconds of CPU (7 samples, seen).
    let out = profkit_refused(dir.path())
        .args([
            "cpu", "hot-loop", "--ops", "5000", "--warmup", "0", "--out", "p",
        ])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let run = std::fs::read_dir(dir.path().join("p"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let cpu = json(&run.join("cpu.json"));
    assert_eq!(cpu["sampler"], "itimer", "{cpu}");
    assert_eq!(cpu["frequency"], 199, "{cpu}");
    let warnings = cpu["warnings"].to_string();
    assert!(
        warnings.contains("perf_event_open refused") && warnings.contains("process timer"),
        "{warnings}"
    );
    let note = json(&run.join("manifest.json"))["cpu_sampling"]["note"].clone();
    let note = note.as_str().unwrap_or_default();
    assert!(note.contains("perf_event_open refused"), "{note}");
    assert!(!note.contains('\n'), "one line: {note}");

    // Asked for by name, the refusal is an error naming the sampler.
    for sampler in ["perf", "perf-stack", "perf-signal"] {
        let out = profkit_refused(dir.path())
            .args(["cpu", "hot-loop", "--duration", "1s", "--warmup", "0"])
            .args(["--sampler", sampler, "--out", "q"])
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap();
        assert!(!out.status.success(), "--sampler {sampler} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("--sampler {sampler}")), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // The filter is what refused: without it the same run samples with perf.
    let out = Command::cargo_bin("profkit")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "cpu", "hot-loop", "--ops", "5000", "--warmup", "0", "--out", "r",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let run = std::fs::read_dir(dir.path().join("r"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let sampler = json(&run.join("cpu.json"))["sampler"].clone();
    let sampler: Sampler = serde_json::from_value(sampler).unwrap();
    assert!(sampler.is_perf(), "{sampler:?}");
}

#[inline(never)]
fn chain_outer(stop: &AtomicBool) {
    chain_middle(stop);
    std::hint::black_box(());
}

#[inline(never)]
fn chain_middle(stop: &AtomicBool) {
    chain_inner(stop);
    std::hint::black_box(());
}

#[inline(never)]
fn chain_inner(stop: &AtomicBool) {
    burn(Duration::from_millis(700), stop);
}

/// Function names of a stack, root first.
fn names(stack: &profkit::profile::cpu::Stack) -> Vec<&str> {
    stack.frames.iter().map(|f| f.function.as_str()).collect()
}

#[test]
fn both_perf_modes_see_the_same_call_chain() {
    let _one = serial();
    let mut seen = Vec::new();
    for choice in [SamplerChoice::PerfStack, SamplerChoice::PerfSignal] {
        let stop = AtomicBool::new(false);
        let ((), profile) = cpu::profile(&with(choice), || chain_outer(&stop)).unwrap();
        assert!(
            profile.sampler.is_perf(),
            "{choice:?}: {:?}",
            profile.sampler
        );
        let total: u64 = profile.stacks.iter().map(|s| s.samples).sum();
        // Samples whose stack holds the whole chain, in order, one frame
        // calling the next.
        let chained: u64 = profile
            .stacks
            .iter()
            .filter(|s| {
                let n = names(s);
                let at = |f: &str| n.iter().position(|x| x.ends_with(f));
                matches!(
                    (at("chain_outer"), at("chain_middle"), at("chain_inner")),
                    (Some(o), Some(m), Some(i)) if o + 1 == m && m + 1 == i
                )
            })
            .map(|s| s.samples)
            .sum();
        assert!(total >= 100, "{choice:?}: {total} samples");
        let share = chained as f64 / total as f64;
        assert!(
            share >= 0.8,
            "{choice:?}: {chained} of {total} samples hold outer → middle → inner"
        );
        seen.push(share);
    }
    // Both modes attribute the burn to the chain within 15 points.
    assert!((seen[0] - seen[1]).abs() <= 0.15, "{seen:?}");
}
