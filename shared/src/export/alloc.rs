//! The allocator setting of a process that exports: upload parts get their
//! own mappings, so resident memory follows the parts in flight.

const MIB: usize = 1024 * 1024;

/// Allocations from this size up get their own mapping: every upload part
/// (at least [`MIN_PART_SIZE`]), and little else.
const OWN_MAPPING_BYTES: usize = 4 * MIB;

/// Makes glibc's malloc give every upload part its own mapping, returned to
/// the system when the part is freed, so the process's resident memory
/// follows the parts in flight instead of growing with the number of parts.
/// By default glibc raises its mmap threshold to the largest block freed
/// (up to 32 MiB on 64-bit), so after the first part every part comes from
/// a heap arena that keeps its high-water mark; a fixed threshold turns that
/// adjustment off (mallopt(3), `M_MMAP_THRESHOLD`). Process-wide: call once
/// at start in a binary that exports. Elsewhere than glibc, does nothing.
pub fn map_parts_separately() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter; any value is valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_BYTES as libc::c_int);
    }
}
