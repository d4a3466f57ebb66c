//! The allocator of every alma-bursar-sync binary.
//!
//! mimalloc rather than glibc's malloc: the import of a large institution
//! spent a fifth of its time in glibc's malloc/free (docs/performance.md).
//! A binary links this crate and calls [`return_freed_memory_promptly`]
//! first thing in `main`.

use std::os::raw::c_long;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (include/mimalloc.h, `mi_option_e`);
/// libmimalloc-sys names it only for mimalloc v2, and it is the same
/// number in both.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the process before it goes back to the
/// system. mimalloc's default is a second: the import frees the reports'
/// buffers while the store's thread allocates the records it writes, and
/// holding the freed pages for a second put the import's peak ~100 MiB
/// higher (543 against 447 MiB at 200,000 fines).
pub const PURGE_DELAY_MS: c_long = 10;

/// Makes mimalloc give freed memory back after [`PURGE_DELAY_MS`].
pub fn return_freed_memory_promptly() {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table
    // (atomically); it takes no pointer and may be called at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// The purge delay mimalloc is using now, in milliseconds.
pub fn purge_delay_ms() -> c_long {
    // SAFETY: as above; `mi_option_get` reads an integer option.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_mimallocs_own_default_until_set() {
        // 1,000 ms is mimalloc v3's documented default: if the option
        // number named something else, this would read another option.
        assert_eq!(purge_delay_ms(), 1000);
        return_freed_memory_promptly();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
