//! Stack unwinding without libgcc: return addresses of the current thread
//! ([`here`]) or of a stack copied elsewhere ([`from_regs`]), leaf first,
//! into a caller's fixed array, never allocating while it unwinds.
//!
//! `backtrace::trace` walks the stack through libgcc's `_Unwind_Backtrace`,
//! which looks every frame's FDE up again (`_Unwind_Find_FDE`,
//! `_dl_find_object`) and interprets its CFI from scratch: more than half of
//! an exact heap profile's time went there. This module uses `framehop`
//! instead: each loaded object's `.eh_frame_hdr` and `.eh_frame`, read
//! straight from the process's memory (found with `dl_iterate_phdr`, so no
//! file is opened or parsed), and a per-thread cache of unwind rules keyed
//! by address, so a hot call site costs a table lookup per frame.
//!
//! Objects are listed once, on the first unwind (or [`prepare`]); code
//! loaded later by `dlopen` unwinds by frame pointer only. Off x86_64 Linux
//! [`here`] falls back to `backtrace::trace_unsynchronized` and
//! [`from_regs`] gives the leaf only.

/// Registers to start unwinding from: instruction pointer, stack pointer,
/// frame pointer (as a perf sample or a signal context gives them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    /// The instruction pointer (the leaf frame's address).
    pub pc: usize,
    /// The stack pointer; the copied stack starts here.
    pub sp: usize,
    /// The frame pointer (rbp on x86_64).
    pub bp: usize,
}

/// Return addresses of the calling thread into `out`, leaf first: `out[0]`
/// is the return address into the caller of `here`, then its caller's, and
/// so on. Returns how many were written (at most `out.len()`). Never
/// allocates once [`prepare`] has run (the first call prepares).
#[inline(never)]
pub fn here(out: &mut [usize]) -> usize {
    imp::here(out)
}

/// Frames of a stack copied elsewhere: `regs.pc` first, then the return
/// addresses found by unwinding with `stack`, a copy of the stack's memory
/// starting at `regs.sp` (reads outside it end the walk). Returns how many
/// were written into `out`. Never allocates once [`prepare`] has run.
pub fn from_regs(regs: Regs, stack: &[u8], out: &mut [usize]) -> usize {
    imp::from_regs(regs, stack, out)
}

/// Lists the loaded objects and their unwind tables now rather than on the
/// first unwind (which then allocates: call this before unwinding where
/// allocating is not allowed, e.g. in a signal handler).
pub fn prepare() {
    imp::prepare()
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use super::Regs;
    use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
    use framehop::Unwinder as _;
    use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, MustNotAllocateDuringUnwind};
    use std::cell::{Cell, RefCell};
    use std::ops::Range;
    use std::sync::OnceLock;

    type Unwinder = UnwinderX86_64<&'static [u8], MustNotAllocateDuringUnwind>;
    type Cache = CacheX86_64<MustNotAllocateDuringUnwind>;

    static UNWINDER: OnceLock<Unwinder> = OnceLock::new();

    thread_local! {
        /// Unwind rules this thread looked up (a 509-entry table).
        static CACHE: RefCell<Option<Box<Cache>>> = const { RefCell::new(None) };
        /// This thread's stack, lowest and highest address; (0, 0) until
        /// asked.
        static STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    }

    pub fn prepare() {
        unwinder();
    }

    fn unwinder() -> &'static Unwinder {
        UNWINDER.get_or_init(|| {
            let mut u = Unwinder::new();
            for m in loaded_modules() {
                u.add_module(m);
            }
            u
        })
    }

    #[inline(always)]
    pub fn here(out: &mut [usize]) -> usize {
        let (pc, sp, bp): (u64, u64, u64);
        // SAFETY: reads three registers into outputs; touches no memory.
        unsafe {
            std::arch::asm!(
                "lea {pc}, [rip]",
                "mov {sp}, rsp",
                "mov {bp}, rbp",
                pc = out(reg) pc,
                sp = out(reg) sp,
                bp = out(reg) bp,
                options(nomem, nostack, preserves_flags),
            );
        }
        let (bottom, top) = stack_bounds();
        // Not on this thread's pthread stack (an alternate signal stack, a
        // stack of the program's own making): nothing known is safe to read.
        if !(bottom..top).contains(&(sp as usize)) {
            return 0;
        }
        let lo = sp;
        let hi = top as u64;
        let mut read = |addr: u64| -> Result<u64, ()> {
            if addr < lo || addr.checked_add(8).is_none_or(|end| end > hi) || addr % 8 != 0 {
                return Err(());
            }
            // SAFETY: `addr` is 8-aligned inside this thread's live stack
            // between our own frame and its top.
            Ok(unsafe { (addr as *const u64).read() })
        };
        // Skip the first frame: the pc inside `here` itself.
        walk(pc, UnwindRegsX86_64::new(pc, sp, bp), &mut read, out, 1)
    }

    pub fn from_regs(regs: Regs, stack: &[u8], out: &mut [usize]) -> usize {
        let lo = regs.sp as u64;
        let mut read = |addr: u64| -> Result<u64, ()> {
            let off = addr.checked_sub(lo).ok_or(())? as usize;
            let bytes = stack.get(off..off.checked_add(8).ok_or(())?).ok_or(())?;
            Ok(u64::from_ne_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let r = UnwindRegsX86_64::new(regs.pc as u64, regs.sp as u64, regs.bp as u64);
        walk(regs.pc as u64, r, &mut read, out, 0)
    }

    /// Unwinds with this thread's cache, dropping the first `skip` frames.
    fn walk(
        pc: u64,
        regs: UnwindRegsX86_64,
        read: &mut impl FnMut(u64) -> Result<u64, ()>,
        out: &mut [usize],
        skip: usize,
    ) -> usize {
        let u = unwinder();
        let mut go = |cache: &mut Cache, out: &mut [usize]| {
            let mut it = u.iter_frames(pc, regs, cache, read);
            let mut n = 0;
            let mut seen = 0;
            while n < out.len() {
                match it.next() {
                    Ok(Some(f)) => {
                        seen += 1;
                        if seen > skip {
                            out[n] = FrameAddress::address(f) as usize;
                            n += 1;
                        }
                    }
                    _ => break,
                }
            }
            n
        };
        CACHE
            .try_with(|c| match c.try_borrow_mut() {
                Ok(mut slot) => {
                    let cache = slot.get_or_insert_with(|| Box::new(Cache::new_in()));
                    go(cache, out)
                }
                // Re-entered on this thread (an allocation hook inside an
                // unwind): no frames rather than a second cache.
                Err(_) => 0,
            })
            .unwrap_or(0)
    }

    /// The calling thread's stack, asked of pthreads once.
    pub(super) fn stack_bounds() -> (usize, usize) {
        let cached = STACK.try_with(Cell::get).unwrap_or((0, 0));
        if cached.1 != 0 {
            return cached;
        }
        let bounds = ask_stack();
        let _ = STACK.try_with(|t| t.set(bounds));
        bounds
    }

    fn ask_stack() -> (usize, usize) {
        // SAFETY: plain pthread calls on the current thread with a zeroed
        // attribute object that is destroyed after use.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return (0, 0);
            }
            let mut addr: *mut libc::c_void = std::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
            libc::pthread_attr_destroy(&mut attr);
            if ok {
                (addr as usize, addr as usize + size)
            } else {
                (0, 0)
            }
        }
    }

    /// One mapped ELF object: what framehop needs of it, read in place.
    struct Found {
        name: String,
        base: u64,
        /// Lowest and highest address of its loaded segments.
        lo: u64,
        hi: u64,
        text: Option<Range<u64>>,
        hdr: Option<Range<u64>>,
        loads: Vec<Range<u64>>,
    }

    fn loaded_modules() -> Vec<Module<&'static [u8]>> {
        let mut found: Vec<Found> = Vec::new();
        // SAFETY: the callback only reads the program headers the loader
        // hands it, for the duration of the call.
        unsafe {
            libc::dl_iterate_phdr(Some(collect), &mut found as *mut Vec<Found> as *mut _);
        }
        found.into_iter().filter_map(module).collect()
    }

    unsafe extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Vec<Found>` passed above; `info` and its
        // headers are valid during the callback.
        let (found, info) = unsafe { (&mut *(data as *mut Vec<Found>), &*info) };
        let phdrs = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
        };
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
                .to_string_lossy()
                .into_owned()
        };
        let mut f = Found {
            name,
            base: info.dlpi_addr,
            lo: u64::MAX,
            hi: 0,
            text: None,
            hdr: None,
            loads: Vec::new(),
        };
        for p in phdrs {
            let r = p.p_vaddr..p.p_vaddr + p.p_memsz;
            match p.p_type {
                libc::PT_LOAD => {
                    f.lo = f.lo.min(r.start + f.base);
                    f.hi = f.hi.max(r.end + f.base);
                    if p.p_flags & libc::PF_X != 0 && f.text.is_none() {
                        f.text = Some(r.clone());
                    }
                    f.loads.push(r);
                }
                libc::PT_GNU_EH_FRAME => f.hdr = Some(r),
                _ => {}
            }
        }
        if f.lo < f.hi {
            found.push(f);
        }
        0
    }

    /// The framehop module of one object: `.eh_frame_hdr` from its
    /// segment, `.eh_frame` from the header's pointer to the end of the
    /// loaded segment holding it (framehop reads FDEs by offset only).
    fn module(f: Found) -> Option<Module<&'static [u8]>> {
        let hdr = f.hdr.clone()?;
        // SAFETY: the segment is mapped for the life of the process (the
        // objects listed are never unloaded by profkit).
        let hdr_bytes: &'static [u8] = unsafe {
            std::slice::from_raw_parts(
                (hdr.start + f.base) as *const u8,
                (hdr.end - hdr.start) as usize,
            )
        };
        let eh_frame_avma = eh_frame_ptr(hdr_bytes, hdr.start + f.base)?;
        let eh_frame_svma = eh_frame_avma.checked_sub(f.base)?;
        let seg = f.loads.iter().find(|r| r.contains(&eh_frame_svma))?;
        let eh = eh_frame_svma..seg.end;
        let eh_bytes: &'static [u8] = unsafe {
            std::slice::from_raw_parts(eh_frame_avma as *const u8, (eh.end - eh.start) as usize)
        };
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: f.text.clone(),
            eh_frame_svma: Some(eh),
            eh_frame: Some(eh_bytes),
            eh_frame_hdr_svma: Some(hdr),
            eh_frame_hdr: Some(hdr_bytes),
            ..Default::default()
        };
        Some(Module::new(f.name, f.lo..f.hi, f.base, info))
    }

    /// The address of `.eh_frame` from an `.eh_frame_hdr` (version 1;
    /// absolute or pc-relative 4- and 8-byte encodings).
    pub(super) fn eh_frame_ptr(hdr: &[u8], hdr_avma: u64) -> Option<u64> {
        let (&version, &enc) = (hdr.first()?, hdr.get(1)?);
        if version != 1 {
            return None;
        }
        let field = hdr.get(4..)?;
        let raw: i64 = match enc & 0x0f {
            0x03 => u32::from_ne_bytes(field.get(..4)?.try_into().ok()?) as i64,
            0x0b => i32::from_ne_bytes(field.get(..4)?.try_into().ok()?) as i64,
            0x04 | 0x0c => i64::from_ne_bytes(field.get(..8)?.try_into().ok()?),
            _ => return None,
        };
        match enc & 0x70 {
            0x00 => Some(raw as u64),
            0x10 => Some((hdr_avma + 4).wrapping_add(raw as u64)),
            _ => None,
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use super::Regs;

    pub fn prepare() {}

    #[inline(always)]
    pub fn here(out: &mut [usize]) -> usize {
        let mut n = 0;
        let mut skipped = false;
        // SAFETY: only reads the stack into `out`; callers do not run it
        // concurrently with another unsynchronized trace on this thread.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                if !skipped {
                    skipped = true;
                    return true;
                }
                if n == out.len() {
                    return false;
                }
                out[n] = frame.ip() as usize;
                n += 1;
                true
            });
        }
        n
    }

    pub fn from_regs(regs: Regs, _stack: &[u8], out: &mut [usize]) -> usize {
        match out.first_mut() {
            Some(slot) => {
                *slot = regs.pc;
                1
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPTH: usize = 4;

    /// What `here` and `backtrace::trace` give at the bottom of the chain,
    /// and (x86_64 Linux) `from_regs` over a copy of this thread's stack.
    struct Seen {
        here: Vec<usize>,
        trace: Vec<usize>,
        #[allow(dead_code)]
        copied: Vec<usize>,
    }

    #[inline(never)]
    fn chain_a() -> Seen {
        std::hint::black_box(chain_b())
    }

    #[inline(never)]
    fn chain_b() -> Seen {
        std::hint::black_box(chain_c())
    }

    #[inline(never)]
    fn chain_c() -> Seen {
        let mut out = [0usize; 64];
        let n = here(&mut out);
        let mut trace = Vec::new();
        backtrace::trace(|f| {
            trace.push(f.ip() as usize);
            true
        });
        Seen {
            here: out[..n].to_vec(),
            trace,
            copied: copy_and_unwind(),
        }
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[inline(never)]
    fn copy_and_unwind() -> Vec<usize> {
        let (pc, sp, bp): (usize, usize, usize);
        // SAFETY: reads registers only.
        unsafe {
            std::arch::asm!("lea {pc}, [rip]", "mov {sp}, rsp", "mov {bp}, rbp",
                pc = out(reg) pc, sp = out(reg) sp, bp = out(reg) bp,
                options(nomem, nostack, preserves_flags));
        }
        let top = imp::stack_bounds().1;
        let len = (top - sp).min(256 * 1024);
        // SAFETY: [sp, sp + len) is this thread's live stack.
        let stack = unsafe { std::slice::from_raw_parts(sp as *const u8, len) }.to_vec();
        let mut out = [0usize; 64];
        let n = from_regs(Regs { pc, sp, bp }, &stack, &mut out);
        out[..n].to_vec()
    }

    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    fn copy_and_unwind() -> Vec<usize> {
        Vec::new()
    }

    fn name(addr: usize) -> String {
        let mut name = String::new();
        backtrace::resolve((addr - 1) as *mut std::ffi::c_void, |s| {
            if name.is_empty() {
                name = s.name().map(|n| n.to_string()).unwrap_or_default();
            }
        });
        name
    }

    #[test]
    fn here_gives_the_return_addresses_backtrace_gives() {
        let seen = chain_a();
        let names: Vec<String> = seen.here.iter().take(DEPTH).map(|&a| name(a)).collect();
        assert!(names[0].contains("chain_c"), "{names:?}");
        assert!(names[1].contains("chain_b"), "{names:?}");
        assert!(names[2].contains("chain_a"), "{names:?}");
        // chain_c calls the two at different places; from the return
        // address into chain_b on, backtrace's frames are the same.
        let at = seen
            .trace
            .iter()
            .position(|&a| a == seen.here[1])
            .expect("backtrace saw the return address into chain_b");
        assert!(name(seen.trace[at - 1]).contains("chain_c"));
        assert_eq!(&seen.trace[at..at + DEPTH], &seen.here[1..1 + DEPTH]);
        // And the walk goes on to the test harness, not 3 frames and out.
        assert!(seen.here.len() > DEPTH, "{}", seen.here.len());
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn a_copied_stack_unwinds_like_the_live_one() {
        let seen = chain_a();
        let c = &seen.copied;
        assert!(
            name(c[0] + 1).contains("copy_and_unwind"),
            "{}",
            name(c[0] + 1)
        );
        assert!(name(c[1]).contains("chain_c"), "{}", name(c[1]));
        // From chain_b's return address on, the same frames as `here`.
        assert_eq!(&c[2..2 + DEPTH], &seen.here[1..1 + DEPTH]);
        // A stack cut short ends the walk instead of reading past it.
        let mut out = [0usize; 64];
        let regs = Regs {
            pc: c[0],
            sp: 0x1000,
            bp: 0,
        };
        assert!(from_regs(regs, &[0u8; 16], &mut out) <= 2);
        // The bounds `here` checks sp against are known on this thread.
        let (bottom, _) = imp::stack_bounds();
        assert!(bottom > 0);
        // An output array that is full stops the walk.
        assert_eq!(here(&mut out[..2]), 2);
        assert_eq!(here(&mut []), 0);
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn eh_frame_hdr_pointers_decode() {
        // version 1, pcrel|sdata4, then a field of -0x100 at offset 4.
        let mut hdr = vec![1u8, 0x1b, 0x03, 0x3b];
        hdr.extend_from_slice(&(-0x100i32).to_ne_bytes());
        assert_eq!(
            imp::eh_frame_ptr(&hdr, 0x10_000),
            Some(0x10_000 + 4 - 0x100)
        );
        let mut abs = vec![1u8, 0x03, 0x03, 0x3b];
        abs.extend_from_slice(&0x4321u32.to_ne_bytes());
        assert_eq!(imp::eh_frame_ptr(&abs, 0x10_000), Some(0x4321));
        assert_eq!(imp::eh_frame_ptr(&[2, 0x1b, 0, 0, 0, 0, 0, 0], 0), None);
        assert_eq!(imp::eh_frame_ptr(&[1, 0x1b], 0), None);
    }
}
