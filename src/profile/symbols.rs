//! Names of the executable's return addresses, kept across runs of the
//! same binary: loading its DWARF (addr2line's context over every unit)
//! costs a short heap profile more than the workload itself, and a second
//! profile of the same binary asks for mostly the same addresses.
//!
//! The cache is one JSON file per executable (keyed by its path, size and
//! modification time) under the temporary directory, `profkit-<uid>/`,
//! holding frames by offset from the executable's load address; anything
//! unreadable is ignored and rewritten. Addresses in shared objects are not
//! cached (their names come from the dynamic symbol table, cheaply).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::PathBuf;

/// Frames by address: the cache of this executable, and what was added.
#[derive(Debug, Default)]
pub struct SymbolCache {
    path: Option<PathBuf>,
    base: usize,
    /// Offset from `base` → frames (`name (file:line:col)`, innermost first).
    known: HashMap<usize, Vec<String>>,
    added: bool,
}

impl SymbolCache {
    /// This executable's cache (empty when there is none or it is unreadable).
    pub fn load() -> SymbolCache {
        let path = cache_path();
        let known = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<HashMap<String, Vec<String>>>(&b).ok())
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| Some((usize::from_str_radix(&k, 16).ok()?, v)))
                    .collect()
            })
            .unwrap_or_default();
        SymbolCache {
            path,
            base: exe_base(),
            known,
            added: false,
        }
    }

    /// Whether a cache file existed with something in it.
    pub fn is_warm(&self) -> bool {
        !self.known.is_empty()
    }

    /// The frames of `ip`, an address in the executable: from the cache, or
    /// from `resolve` (which gives them without the `0x…: ` prefix) and
    /// remembered. Returned with the prefix, as dhat-rs writes frames.
    pub fn frames(&mut self, ip: usize, resolve: impl FnOnce(usize) -> Vec<String>) -> Vec<String> {
        let key = ip.wrapping_sub(self.base);
        let frames = match self.known.get(&key) {
            Some(f) => f,
            None => {
                self.added = true;
                self.known.entry(key).or_insert_with(|| resolve(ip))
            }
        };
        frames.iter().map(|f| format!("{ip:#x}: {f}")).collect()
    }

    /// Writes the cache back when it learnt something (best effort: a cache
    /// that cannot be written only costs the next run time).
    pub fn save(&self) {
        let Some(path) = self.path.as_ref().filter(|_| self.added) else {
            return;
        };
        let map: HashMap<String, &Vec<String>> = self
            .known
            .iter()
            .map(|(k, v)| (format!("{k:x}"), v))
            .collect();
        let Ok(bytes) = serde_json::to_vec(&map) else {
            return;
        };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(&bytes));
        if written.is_err() || std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        if let Some(dir) = path.parent() {
            prune(dir, KEEP);
        }
    }
}

/// Caches kept in the directory: every build of a binary (each test
/// binary too) has one, so older ones go.
const KEEP: usize = 16;

/// Removes all but the `keep` most recently written `symbols-*.json` of
/// `dir` (best effort).
fn prune(dir: &std::path::Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut caches: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("symbols-") && name.ends_with(".json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    caches.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, old) in caches.into_iter().skip(keep) {
        let _ = std::fs::remove_file(old);
    }
}

/// `<tmp>/profkit-<uid>/symbols-<key>.json`, the directory made private
/// to the user; `None` when it cannot be made or is not ours.
fn cache_path() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&exe).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &exe,
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ino(),
    )
        .hash(&mut h);
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("profkit-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let dmeta = std::fs::symlink_metadata(&dir).ok()?;
    if !dmeta.is_dir() || dmeta.uid() != uid {
        return None;
    }
    Some(dir.join(format!("symbols-{:016x}.json", h.finish())))
}

/// Where the executable is loaded.
pub(crate) fn exe_base() -> usize {
    // SAFETY: dladdr only reads the loader's tables into `info`.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = exe_base as *const () as *const libc::c_void;
    if unsafe { libc::dladdr(addr, &mut info) } == 0 {
        return 0;
    }
    info.dli_fbase as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_resolved_once_and_found_by_offset_next_time() {
        let mut c = SymbolCache {
            base: 0x1000,
            ..SymbolCache::default()
        };
        let mut calls = 0;
        let mut resolve = |_| {
            calls += 1;
            vec!["f (a.rs:1:1)".to_string()]
        };
        assert_eq!(c.frames(0x1010, &mut resolve), vec!["0x1010: f (a.rs:1:1)"]);
        assert_eq!(c.frames(0x1010, &mut resolve), vec!["0x1010: f (a.rs:1:1)"]);
        assert_eq!(calls, 1);
        assert!(c.added);
        // Loaded elsewhere next run: the same offset, a new address.
        c.base = 0x5000;
        assert_eq!(
            c.frames(0x5010, |_| unreachable!()),
            vec!["0x5010: f (a.rs:1:1)"]
        );
    }

    #[test]
    fn only_the_newest_caches_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(1000);
        for i in 0..5u64 {
            let p = dir.path().join(format!("symbols-{i}.json"));
            std::fs::write(&p, b"{}").unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(i * 10))
                .unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), b"x").unwrap();
        prune(dir.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["other.txt", "symbols-3.json", "symbols-4.json"]);
    }

    #[test]
    fn a_cache_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let mut c = SymbolCache {
            path: Some(path.clone()),
            base: 0x1000,
            ..SymbolCache::default()
        };
        c.frames(0x1234, |_| {
            vec!["g (b.rs:2:3)".into(), "h (b.rs:4:5)".into()]
        });
        c.save();
        let text = std::fs::read_to_string(&path).unwrap();
        let m: HashMap<String, Vec<String>> = serde_json::from_str(&text).unwrap();
        assert_eq!(m["234"], vec!["g (b.rs:2:3)", "h (b.rs:4:5)"]);
        // A corrupt file is ignored.
        std::fs::write(&path, b"{not json").unwrap();
        let read = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<HashMap<String, Vec<String>>>(&b).ok());
        assert!(read.is_none());
    }
}
