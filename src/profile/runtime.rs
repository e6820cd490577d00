//! Runtime plumbing frames: what every worker stack carries between the
//! thread and the workload — `clone3`, `start_thread`, std's
//! `thread_start`, boxed `FnOnce` and `{{vtable.shim}}` calls, the
//! `catch_unwind`/`do_call`/`__rust_try` frames of a thread's panic guard,
//! `__rust_begin_short_backtrace`, profkit's `run_phase` closures, bare
//! `FnOnce::call_once`/`FnMut::call_mut` shims, the program's start-up
//! (`_start`, `__libc_start_main`, `std::rt::lang_start`) — and
//! iterator-adapter or closure shims that only repeat their caller.
//! Stacks fold them away by default, CPU and heap alike, so a flamegraph
//! reads thread → the workload's `operation` → the user's code; the leaf
//! (where the time or the allocation is) is never folded.

/// Whether a frame (a demangled function name) is runtime plumbing.
pub fn is_runtime_frame(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "clone",
        "clone3",
        "__clone",
        "__clone3",
        "start_thread",
        "_start",
        "__rust_try",
        "__libc_start_main",
        "__libc_start_main_impl",
        "__libc_start_call_main",
    ];
    const CONTAINS: &[&str] = &[
        "::thread_start",
        "{{vtable.shim}}",
        "__rust_begin_short_backtrace",
        "std::panicking::try",
        "std::panicking::catch_unwind",
        "std::panic::catch_unwind",
        "::do_call",
        "std::thread::lifecycle::spawn_unchecked",
        "std::thread::Builder::spawn_unchecked",
        "std::rt::lang_start",
        "profkit::measure::run_phase::{{closure}}",
    ];
    const PREFIX: &[&str] = &[
        "<alloc::boxed::Box<dyn core::ops::function::Fn",
        "<core::panic::unwind_safe::AssertUnwindSafe<",
        "core::ops::function::FnOnce::call_once",
        "core::ops::function::FnMut::call_mut",
        "core::ops::function::Fn::call",
        "core::ops::function::impls::",
        "<&F as core::ops::function::",
        "<&mut F as core::ops::function::",
        // Iterator adapters between a function and its own closure.
        "core::iter::adapters::",
        "<core::iter::adapters::",
        "core::iter::traits::",
        "<core::slice::iter::",
    ];
    EXACT.contains(&name)
        || CONTAINS.iter().any(|c| name.contains(c))
        || PREFIX.iter().any(|p| name.starts_with(p))
}

/// The one frame that stands for profkit's own allocator hooks: the global
/// allocator [`crate::alloc::ProfkitAlloc`] and the `SQLITE_CONFIG_MALLOC`
/// methods of [`crate::db::sqlite_alloc`] that route SQLite's memory through
/// it. They are profkit's code, not the user's: folded into one labelled
/// frame so that nobody mistakes them for their own (what they cost: README,
/// "Frames with names").
pub const ALLOCATOR_HOOK: &str = "profkit: allocator hook";

/// A frame of profkit's allocator hooks proper.
fn is_allocator_hook(name: &str) -> bool {
    name.starts_with("profkit::db::sqlite_alloc::")
        || name.starts_with("<profkit::alloc::ProfkitAlloc as ")
        || name == "profkit::alloc::mode"
}

/// Rust's allocator shims and the helpers a hook calls (inlined or, in a
/// debug build, not): part of a hook when they follow or precede one.
fn is_allocator_glue(name: &str) -> bool {
    let n = name.strip_prefix("__rustc::").unwrap_or(name);
    matches!(
        n,
        "__rust_alloc" | "__rust_dealloc" | "__rust_realloc" | "__rust_alloc_zeroed"
    ) || name.starts_with("core::")
        || name.starts_with("<core::")
        || name.starts_with("std::alloc::")
        || name.starts_with("<std::alloc::System as ")
        || name.starts_with("std::sys::alloc::")
        || name.starts_with("std::sys::pal::unix::alloc::")
}

/// The runs of frames (root first) that are profkit's allocator hooks: each
/// starts at a hook frame, or at Rust's allocator shim (`__rust_alloc` …)
/// right before one, and goes on towards the leaf over hooks and the
/// helpers they call. A caller's `core::` frames above the hook stay.
pub fn allocator_hook_runs<S: AsRef<str>>(frames: &[S]) -> Vec<std::ops::Range<usize>> {
    let names: Vec<&str> = frames.iter().map(|f| f.as_ref()).collect();
    let shim = |n: &str| {
        let n = n.strip_prefix("__rustc::").unwrap_or(n);
        n.starts_with("__rust_") && is_allocator_glue(n)
    };
    let mut runs = Vec::new();
    let mut i = 0;
    while i < names.len() {
        let starts = is_allocator_hook(names[i])
            || (shim(names[i]) && names.get(i + 1).is_some_and(|n| is_allocator_hook(n)));
        if !starts {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < names.len() && (is_allocator_hook(names[end]) || is_allocator_glue(names[end]))
        {
            end += 1;
        }
        runs.push(i..end);
        i = end;
    }
    runs
}

/// `f::{{closure}}::{{closure}}` → `f`.
fn without_closures(name: &str) -> &str {
    let mut s = name;
    while let Some(rest) = s.strip_suffix("::{{closure}}") {
        s = rest;
    }
    s
}

/// The frames to keep of a stack (root first): runtime plumbing and
/// closures of the frame before them are folded, the leaf always stays.
pub fn keep<S: AsRef<str>>(frames: &[S]) -> Vec<bool> {
    let mut kept = vec![true; frames.len()];
    let mut caller: Option<&str> = None;
    for (i, f) in frames.iter().enumerate() {
        let name = f.as_ref();
        if i + 1 == frames.len() {
            break;
        }
        let repeats_caller = name.ends_with("::{{closure}}")
            && caller.is_some_and(|c| without_closures(c) == without_closures(name));
        if is_runtime_frame(name) || repeats_caller {
            kept[i] = false;
        } else {
            caller = Some(name);
        }
    }
    kept
}

/// A folded line (`root;…;leaf`) with runtime frames folded; its first
/// frame (the thread name, or the outermost frame of a heap stack) is
/// kept as it is when `root_is_thread`.
pub fn fold_line(line: &str, root_is_thread: bool) -> String {
    let frames: Vec<&str> = line.split(';').collect();
    let (root, rest) = match root_is_thread {
        true => (frames.first().copied(), &frames[1.min(frames.len())..]),
        false => (None, &frames[..]),
    };
    let kept = keep(rest);
    root.into_iter()
        .chain(rest.iter().zip(&kept).filter(|(_, k)| **k).map(|(f, _)| *f))
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker stack of the main job as pprof-rs records it (release build).
    pub(crate) const WORKER: &str = "pk-worker-0;clone3;start_thread;<std::sys::thread::unix::Thread>::new::thread_start;<alloc::boxed::Box<dyn core::ops::function::FnOnce<(), Output = ()> + core::marker::Send> as core::ops::function::FnOnce<()>>::call_once;core::ops::function::FnOnce::call_once{{vtable.shim}};std::thread::lifecycle::spawn_unchecked::{{closure}};std::panic::catch_unwind;std::panicking::catch_unwind;__rust_try;std::panicking::catch_unwind::do_call;<core::panic::unwind_safe::AssertUnwindSafe<F> as core::ops::function::FnOnce<()>>::call_once;std::thread::lifecycle::spawn_unchecked::{{closure}}::{{closure}};std::sys::backtrace::__rust_begin_short_backtrace;profkit::measure::run_phase::{{closure}}::{{closure}};<profkit::workload::db_ops::DbWorkload as profkit::workload::Workload>::operation;core::ops::function::FnOnce::call_once;profkit::workload::db_ops::builtins::{{closure}}::{{closure}};profkit::db::DatabaseManager::recent_emails_n_plus_one;profkit::db::DatabaseManager::get_email;rusqlite::statement::Statement::query_row";

    #[test]
    fn worker_plumbing_folds_to_thread_then_operation() {
        assert_eq!(
            fold_line(WORKER, true),
            "pk-worker-0;<profkit::workload::db_ops::DbWorkload as profkit::workload::Workload>::operation;profkit::workload::db_ops::builtins::{{closure}}::{{closure}};profkit::db::DatabaseManager::recent_emails_n_plus_one;profkit::db::DatabaseManager::get_email;rusqlite::statement::Statement::query_row"
        );
    }

    #[test]
    fn allocator_hooks_are_found_as_runs_below_their_caller() {
        // SQLite → profkit's SQLite hook → Rust's shim → the global allocator → libc.
        let s = [
            "sqlite3Malloc",
            "profkit::db::sqlite_alloc::x_malloc",
            "profkit::db::sqlite_alloc::layout",
            "core::alloc::layout::Layout::from_size_align",
            "__rustc::__rust_alloc",
            "<profkit::alloc::ProfkitAlloc as core::alloc::global::GlobalAlloc>::alloc",
            "<std::alloc::System as core::alloc::global::GlobalAlloc>::alloc",
            "malloc",
        ];
        assert_eq!(allocator_hook_runs(&s), vec![1..7]);
        // A Vec growing: alloc::alloc::alloc is the caller's, the shim joins the hook.
        let v = [
            "app::f",
            "core::ptr::drop_in_place<app::X>",
            "alloc::alloc::alloc",
            "__rustc::__rust_alloc",
            "<profkit::alloc::ProfkitAlloc as core::alloc::global::GlobalAlloc>::alloc",
        ];
        assert_eq!(allocator_hook_runs(&v), vec![3..5]);
        // Without profkit's allocator the shim is nobody's hook.
        let plain = ["app::f", "alloc::alloc::alloc", "__rust_alloc", "malloc"];
        assert!(allocator_hook_runs(&plain).is_empty());
    }

    #[test]
    fn closures_and_adapters_repeating_their_caller_fold_but_leaves_stay() {
        let line = "app::handle;core::iter::traits::iterator::Iterator::for_each;<core::iter::adapters::map::Map<I,F> as core::iter::traits::iterator::Iterator>::fold;app::handle::{{closure}};app::parse";
        assert_eq!(fold_line(line, false), "app::handle;app::parse");
        // A closure of another function is real information.
        let line = "app::handle;app::other::{{closure}};app::parse";
        assert_eq!(fold_line(line, false), line);
        // The leaf holds the time: never folded, even when it is plumbing.
        assert_eq!(fold_line("t;app::f;clone3", true), "t;app::f;clone3");
        assert_eq!(fold_line("t", true), "t");
        assert_eq!(fold_line("", false), "");
    }
}
