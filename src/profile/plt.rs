//! Names of the executable's PLT stubs: a call from statically linked C
//! code (SQLite) to a libc function (`strcspn`, `memcpy`,
//! `pthread_mutex_lock`) goes through a 16-byte stub in `.plt` /
//! `.plt.sec`, which has no symbol and no DWARF. A sample there (1–2 % of
//! search-like's, under `patternCompare`) is named `strcspn@plt` from the
//! stub's slot in `.rela.plt`, as `perf` names it.

use std::sync::OnceLock;

use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, SymbolIndex};

/// The stubs of one PLT section: file addresses and names by slot.
#[derive(Debug, Default)]
struct Stubs {
    start: u64,
    end: u64,
    /// Slot of the first named stub (1 in `.plt`, whose slot 0 is the
    /// resolver's header; 0 in `.plt.sec`).
    first: u64,
    names: Vec<String>,
}

const ENTRY: u64 = 16;

/// The executable's PLT stubs, read once (empty when unreadable).
fn stubs() -> &'static (usize, Vec<Stubs>) {
    static STUBS: OnceLock<(usize, Vec<Stubs>)> = OnceLock::new();
    STUBS.get_or_init(|| {
        let base = super::symbols::exe_base();
        let read = std::env::current_exe()
            .ok()
            .and_then(|p| std::fs::read(p).ok())
            .map(|data| parse(&data))
            .unwrap_or_default();
        (base, read)
    })
}

/// The PLT sections of an ELF file with the names of their slots.
fn parse(data: &[u8]) -> Vec<Stubs> {
    let Ok(file) = object::File::parse(data) else {
        return Vec::new();
    };
    if file.architecture() != object::Architecture::X86_64 {
        return Vec::new();
    }
    let Some(dynsym) = file.dynamic_symbol_table() else {
        return Vec::new();
    };
    let Some(rela) = file
        .section_by_name(".rela.plt")
        .and_then(|s| s.data().ok())
    else {
        return Vec::new();
    };
    // Elf64_Rela: r_offset, r_info (symbol index in its high 32 bits), r_addend.
    let names: Vec<String> = rela
        .chunks_exact(24)
        .map(|r| {
            let info = u64::from_le_bytes(r[8..16].try_into().unwrap_or([0; 8]));
            dynsym
                .symbol_by_index(SymbolIndex((info >> 32) as usize))
                .ok()
                .and_then(|s| s.name().ok())
                .map_or_else(|| "[plt]".to_string(), |n| format!("{n}@plt"))
        })
        .collect();
    let mut out = Vec::new();
    for (name, first) in [(".plt.sec", 0), (".plt", 1)] {
        if let Some(s) = file.section_by_name(name) {
            out.push(Stubs {
                start: s.address(),
                end: s.address() + s.size(),
                first,
                names: names.clone(),
            });
            // With `.plt.sec` (IBT), `.plt` holds only the lazy-binding
            // trampolines: the named stubs are in `.plt.sec`.
            if first == 0 {
                break;
            }
        }
    }
    out
}

fn lookup(stubs: &[Stubs], addr: u64) -> Option<String> {
    let s = stubs.iter().find(|s| (s.start..s.end).contains(&addr))?;
    let slot = (addr - s.start) / ENTRY;
    match slot.checked_sub(s.first) {
        Some(i) => s.names.get(i as usize).cloned(),
        None => Some("[plt]".to_string()),
    }
}

/// `name@plt` when runtime address `ip` lies in one of the executable's
/// PLT stubs.
pub fn name(ip: usize) -> Option<String> {
    let (base, stubs) = stubs();
    if stubs.is_empty() {
        return None;
    }
    lookup(stubs, ip.checked_sub(*base)? as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stub_of_this_executable_is_named() {
        let (base, stubs) = stubs();
        // The test binary calls libc through its PLT (x86_64 Linux).
        if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            return;
        }
        let s = stubs
            .iter()
            .find(|s| s.first == 0 || s.first == 1)
            .expect("a PLT");
        assert!(!s.names.is_empty());
        let mut named = Vec::new();
        for slot in s.first..(s.end - s.start) / ENTRY {
            let ip = base + (s.start + slot * ENTRY + 4) as usize;
            named.push(name(ip).expect("named"));
        }
        assert!(named.iter().all(|n| n.ends_with("@plt")), "{named:?}");
        assert!(
            named.iter().any(|n| n == "free@plt" || n == "malloc@plt"),
            "{named:?}"
        );
        // Outside the PLT: nothing.
        assert_eq!(name(base + s.end as usize + 64 * 1024 * 1024), None);
    }

    #[test]
    fn slots_map_to_relocations_in_order() {
        let plt = [Stubs {
            start: 0x1000,
            end: 0x1030,
            first: 1,
            names: vec!["a@plt".into(), "b@plt".into()],
        }];
        assert_eq!(lookup(&plt, 0x1005).as_deref(), Some("[plt]"));
        assert_eq!(lookup(&plt, 0x1010).as_deref(), Some("a@plt"));
        assert_eq!(lookup(&plt, 0x102f).as_deref(), Some("b@plt"));
        assert_eq!(lookup(&plt, 0x1030), None);
    }
}
