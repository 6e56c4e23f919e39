//! The process' memory count: a global allocator over the system malloc
//! that adds every block's usable size to one counter and takes it off on
//! free, as Redis' zmalloc does for `used_memory`.
//!
//! * What malloc really hands out, not the requested size: glibc's chunk
//!   rounding (8 bytes of header, 16-byte steps, 32 bytes at least; blocks
//!   from 128 KiB on are mmapped whole pages), computed from the layout on
//!   both sides instead of asking `malloc_usable_size` (which reads the
//!   block's header: a cache miss on every free of a cold block, 8% of an
//!   evicting SET's CPU). Alloc and free compute it from the same layout,
//!   so the count never drifts.
//! * Cheap on the request path: each thread keeps its running difference in
//!   a thread-local cell and adds it to the shared atomic only once it
//!   passes ±[`FLUSH`] bytes (one uncontended add per 64 KiB of net
//!   allocation instead of one per block). [`used`] may therefore lag by at
//!   most `FLUSH` per thread; [`used_here`] adds the calling thread's own
//!   difference (eviction measures what it freed with it).
//! * A thread that ends hands over its difference in its last flush
//!   ([`flush_thread`], called by the runtime's thread-stop hook); a thread
//!   that ends without it leaves at most `FLUSH` bytes uncounted.
//!
//! Only the codis-server binary installs it (`main.rs`); in unit tests the
//! count stays 0 and nothing is evicted.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

/// Net bytes a thread keeps to itself before adding them to the total.
const FLUSH: i64 = 64 << 10;

static USED: AtomicI64 = AtomicI64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // Const-initialised and without a destructor: reading it never
    // allocates, so the allocator itself may use it.
    static LOCAL: Cell<i64> = const { Cell::new(0) };
}

#[inline(always)]
fn count(n: i64) {
    let spilled = LOCAL.try_with(|l| {
        let v = l.get() + n;
        if (-FLUSH..=FLUSH).contains(&v) {
            l.set(v);
        } else {
            l.set(0);
            USED.fetch_add(v, Relaxed);
        }
    });
    if spilled.is_err() {
        USED.fetch_add(n, Relaxed);
    }
}

/// glibc's usable size for a request of `n` bytes (see the module note).
#[inline(always)]
pub fn usable(n: usize) -> i64 {
    const MMAP_FROM: usize = 128 << 10;
    if n >= MMAP_FROM {
        ((n + 16 + 4095) & !4095) as i64 - 16
    } else {
        (((n + 8 + 15) & !15).max(32) - 8) as i64
    }
}

/// The counting allocator (`#[global_allocator]` in main.rs).
pub struct Counting;

// SAFETY: every call goes to `System` unchanged; the counting only reads
// the blocks' sizes.
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            count(usable(l.size()));
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as alloc.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            count(usable(l.size()));
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-usable(l.size()));
        // SAFETY: as alloc.
        unsafe { System.dealloc(p, l) }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: as alloc.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            count(usable(new) - usable(l.size()));
        }
        q
    }
}

/// Marks the counting allocator as the process' allocator (main.rs, at
/// start): until then [`installed`] is false and memory limits are off.
pub fn install() {
    INSTALLED.store(true, Relaxed);
}

/// Whether [`used`] counts this process' memory.
pub fn installed() -> bool {
    INSTALLED.load(Relaxed)
}

/// Bytes allocated now, as last flushed by every thread.
#[inline]
pub fn used() -> u64 {
    USED.load(Relaxed).max(0) as u64
}

/// [`used`] plus the calling thread's unflushed difference: exact for what
/// this thread allocated or freed since its last flush.
#[inline]
pub fn used_here() -> u64 {
    let local = LOCAL.try_with(Cell::get).unwrap_or(0);
    (USED.load(Relaxed) + local).max(0) as u64
}

/// Adds the calling thread's difference to the total (a thread that ends).
pub fn flush_thread() {
    let _ = LOCAL.try_with(|l| {
        let v = l.replace(0);
        if v != 0 {
            USED.fetch_add(v, Relaxed);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_sizes_follow_glibc() {
        assert_eq!(usable(1), 24);
        assert_eq!(usable(24), 24);
        assert_eq!(usable(25), 40);
        assert_eq!(usable(124), 136);
        assert_eq!(usable(200 << 10), (200 << 10) + 4096 - 16);
    }

    #[test]
    fn local_differences_spill_past_the_threshold() {
        // The test binary's allocator is the system one: drive `count` by hand.
        let before = USED.load(Relaxed);
        std::thread::spawn(move || {
            count(FLUSH);
            assert_eq!(LOCAL.with(Cell::get), FLUSH);
            count(1);
            assert_eq!(LOCAL.with(Cell::get), 0);
            count(-100);
            flush_thread();
            assert_eq!(LOCAL.with(Cell::get), 0);
        })
        .join()
        .unwrap();
        // Other tests' threads do not touch USED (nothing is installed), so
        // the difference is exactly what this thread counted.
        assert_eq!(USED.load(Relaxed) - before, FLUSH + 1 - 100);
    }
}
