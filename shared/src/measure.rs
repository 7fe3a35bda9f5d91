//! Memory figures for the benchmarks: a global allocator that counts live
//! heap bytes and their peak, and the process's resident peak. A bench
//! binary installs the allocator with
//! `#[global_allocator] static ALLOCATOR: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes it has handed out and not yet
/// got back.
pub struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are only arithmetic on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract of `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract of `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Live heap bytes now (0 unless [`Counting`] is the global allocator).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a new peak measurement from the live bytes now, and returns them.
pub fn start_peak() -> usize {
    let now = live_bytes();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The most live heap bytes since [`start_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// The process's peak resident memory (`VmHWM` of `/proc/self/status`), in
/// KiB; `None` where there is no such file.
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds this process has used so far, user and system, all threads
/// (`getrusage(RUSAGE_SELF)`): the work a benchmark did, which other load
/// on the machine does not inflate the way it does wall time.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one struct rusage, zero-initialised here.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows_with_work() {
        let before = super::cpu_seconds();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(std::hint::black_box(x) != 1);
        assert!(super::cpu_seconds() > before);
    }

    #[test]
    fn the_resident_peak_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(super::vm_hwm_kib().is_some_and(|kib| kib > 0));
        }
    }
}
