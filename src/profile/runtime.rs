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
