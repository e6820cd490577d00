//! From addresses to frames: the stacks of either sampler (pprof-rs's
//! in-handler unwinding or the watcher's stack copies) symbolised once per
//! address, inlined functions as frames of their own, merged per thread.

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::PathBuf;

use super::cpu::{Frame, Stack};

/// Frames of the profiler and of the signal delivery: everything from the
/// root-most of them towards the leaf is dropped.
fn is_profiler_frame(name: &str) -> bool {
    let n = name.trim_start_matches('<');
    n.starts_with("pprof::") || n.contains("perf_signal_handler") || n == "__restore_rt"
}

/// A demangled name made safe for folded stacks: no Rust hash suffix, no
/// `;` (the frame separator), no control characters.
pub fn clean_name(raw: &str) -> String {
    let mut s = raw;
    if let Some(i) = s.rfind("::h") {
        let hash = &s[i + 3..];
        if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            s = &s[..i];
        }
    }
    let s: String = s
        .chars()
        .map(|c| match c {
            ';' => ',',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if s.trim().is_empty() {
        "[unknown]".to_string()
    } else {
        s
    }
}

/// File name of the binary or library holding runtime address `ip`, and
/// the loader's nearest exported symbol at or below it (if any).
fn module_of(ip: usize) -> Option<(String, Option<String>)> {
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let found = unsafe { libc::dladdr(ip as *const c_void, &mut info) } != 0;
    if !found || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr set dli_fname (and dli_sname when not null) to
    // NUL-terminated strings.
    let path = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let symbol = (!info.dli_sname.is_null())
        .then(|| unsafe { std::ffi::CStr::from_ptr(info.dli_sname) })
        .map(|s| s.to_string_lossy().into_owned());
    let path = PathBuf::from(path.to_string_lossy().into_owned());
    let module = path.file_name()?.to_string_lossy().into_owned();
    Some((module, symbol))
}

/// The name of a function of the vDSO (`__vdso_clock_gettime`): the kernel
/// maps it into the process with no file behind it, so backtrace, which
/// reads symbols from files, finds nothing there; the loader knows its
/// exported symbols, and every function of the vDSO is exported.
fn vdso_name(module: Option<&(String, Option<String>)>) -> Option<String> {
    let (module, symbol) = module?;
    if module.starts_with("linux-vdso") || module.starts_with("linux-gate") {
        symbol.clone()
    } else {
        None
    }
}

/// The frames at one address, root first: the function and the functions
/// inlined into it there. `lookup` is the address to resolve (a return
/// address minus one, so that a call's line and inline scope are found).
///
/// Names come from DWARF, or from the ELF symbol table where DWARF has
/// nothing (C code built without `-g`, assembly): backtrace's gimli backend
/// falls back to `.symtab` by itself. `backtrace::resolve` takes a *return
/// address* and looks one byte back, so it is given `lookup + 1`: given
/// `lookup`, a sample at a function's first instruction was looked up in
/// the padding before it, where nothing is named — 5–14 % of samples showed
/// as `[profkit]` that way, most of them at the entry of profkit's own
/// allocator hooks.
fn symbolize(lookup: usize) -> Vec<Frame> {
    let found = module_of(lookup);
    let module = found.as_ref().map(|(m, _)| m.clone());
    let mut frames = Vec::new();
    backtrace::resolve(lookup.wrapping_add(1) as *mut c_void, |s| {
        frames.push(Frame {
            function: clean_name(
                &s.name()
                    .map(|n| format!("{n:#}"))
                    .unwrap_or_else(|| "[unknown]".to_string()),
            ),
            file: s.filename().map(|p| p.to_string_lossy().into_owned()),
            line: s.lineno(),
            module: module.clone(),
            inlined: false,
        });
    });
    if frames.is_empty() {
        frames.push(Frame {
            function: super::plt::name(lookup)
                .or_else(|| vdso_name(found.as_ref()))
                .unwrap_or_else(|| {
                    module
                        .as_deref()
                        .map_or("[unknown]".to_string(), |m| format!("[{m}]"))
                }),
            file: None,
            line: None,
            module,
            inlined: false,
        });
    }
    // backtrace lists the innermost inlined function first.
    frames.reverse();
    for f in frames.iter_mut().skip(1) {
        f.inlined = true;
    }
    frames
}

/// Stacks from samples given as (thread name, addresses leaf first — the
/// interrupted instruction, then return addresses — and a count): each
/// return address is looked up one byte back (so that the call's line and
/// inline scope are found), frames of the profiler are cut off, equal
/// stacks merged, in a deterministic order (by thread, then frames).
pub fn stacks(samples: impl IntoIterator<Item = (String, Vec<usize>, u64)>) -> Vec<Stack> {
    sorted(stacks_by(samples))
}

/// [`stacks`] grouped by any key (a thread name, or a thread and a request
/// label), merged but not sorted.
pub fn stacks_by<K: std::hash::Hash + Eq>(
    samples: impl IntoIterator<Item = (K, Vec<usize>, u64)>,
) -> HashMap<(K, Vec<Frame>), u64> {
    let mut cache: HashMap<usize, Vec<Frame>> = HashMap::new();
    let mut merged: HashMap<(K, Vec<Frame>), u64> = HashMap::new();
    for (thread, ips, count) in samples {
        let lookups: Vec<usize> = ips
            .iter()
            .enumerate()
            .map(|(i, &ip)| if i == 0 { ip } else { ip.saturating_sub(1) })
            .collect();
        for &ip in &lookups {
            cache.entry(ip).or_insert_with(|| symbolize(ip));
        }
        let chains: Vec<&Vec<Frame>> = lookups.iter().map(|ip| &cache[ip]).collect();
        let start = chains
            .iter()
            .rposition(|c| c.iter().any(|f| is_profiler_frame(&f.function)))
            .map_or(0, |i| i + 1);
        let stack: Vec<Frame> = chains[start..]
            .iter()
            .rev()
            .flat_map(|c| c.iter().cloned())
            .collect();
        *merged.entry((thread, stack)).or_default() += count;
    }
    merged
}

/// Sample counts by (thread, frames) as stacks in [`CpuProfile`]'s order:
/// by thread, then frames.
///
/// [`CpuProfile`]: super::cpu::CpuProfile
pub fn sorted(merged: impl IntoIterator<Item = ((String, Vec<Frame>), u64)>) -> Vec<Stack> {
    let mut stacks: Vec<Stack> = merged
        .into_iter()
        .map(|((thread, frames), samples)| Stack {
            thread,
            frames,
            samples,
        })
        .collect();
    stacks.sort_by(|a, b| (&a.thread, &a.frames).cmp(&(&b.thread, &b.frames)));
    stacks
}

#[cfg(test)]
mod tests {
    use super::*;

    // A function with no DWARF at all (assembly), named only by `.symtab`.
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    std::arch::global_asm!(
        ".text",
        ".p2align 4",
        ".globl profkit_test_without_dwarf",
        ".type profkit_test_without_dwarf, @function",
        "profkit_test_without_dwarf:",
        "nop",
        "nop",
        "ret",
        ".size profkit_test_without_dwarf, . - profkit_test_without_dwarf",
    );

    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    extern "C" {
        fn profkit_test_without_dwarf();
    }

    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[test]
    fn an_address_without_dwarf_is_named_from_the_symbol_table() {
        let start = profkit_test_without_dwarf as *const () as usize;
        // A sample at the first instruction (a leaf is looked up as is) and
        // one inside.
        for ip in [start, start + 1] {
            let frames = symbolize(ip);
            assert_eq!(frames.len(), 1, "{frames:?}");
            assert_eq!(frames[0].function, "profkit_test_without_dwarf");
            assert_eq!(frames[0].file, None, "no DWARF: no file");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_address_in_the_vdso_is_named() {
        // The vDSO as the loader lists it; `clock_gettime` of std lands there.
        let vdso = c"linux-vdso.so.1";
        // SAFETY: RTLD_NOLOAD only looks the object up; dlsym reads its table.
        let f = unsafe {
            let h = libc::dlopen(vdso.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
            assert!(!h.is_null(), "no vDSO in this process");
            libc::dlsym(h, c"__vdso_clock_gettime".as_ptr())
        } as usize;
        assert_ne!(f, 0, "no __vdso_clock_gettime in the vDSO");
        for ip in [f, f + 4] {
            let frames = symbolize(ip);
            assert_eq!(frames.len(), 1, "{frames:?}");
            assert!(frames[0].function.ends_with("clock_gettime"), "{frames:?}");
            assert!(frames[0]
                .module
                .as_deref()
                .unwrap()
                .starts_with("linux-vdso"));
        }
    }

    #[test]
    fn names_are_cleaned_for_folded_stacks() {
        assert_eq!(clean_name("foo::bar::h0123456789abcdef"), "foo::bar");
        assert_eq!(clean_name("<[u8; 4] as X>::f"), "<[u8, 4] as X>::f");
        assert_eq!(clean_name("a\nb"), "a b");
        assert_eq!(clean_name(""), "[unknown]");
        assert_eq!(clean_name("foo::hello"), "foo::hello");
    }

    #[inline(never)]
    fn here() -> usize {
        here as *const () as usize + 1
    }

    #[test]
    fn stacks_merge_per_thread_root_first() {
        let leaf = here();
        let s = stacks([
            ("a".to_string(), vec![leaf], 2),
            ("a".to_string(), vec![leaf], 3),
            ("b".to_string(), vec![leaf], 1),
        ]);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].thread.as_str(), s[0].samples), ("a", 5));
        assert!(
            s[0].frames.last().unwrap().function.ends_with("here"),
            "{:?}",
            s[0].frames
        );
    }
}
