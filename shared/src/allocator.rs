//! The allocator's settings, chosen here at start-up rather than left to the environment.
//!
//! glibc's malloc adapts its mmap threshold: after a large block is freed, the threshold rises
//! to that block's size, and from then on blocks that large come from the heap, where freed
//! memory is kept for reuse instead of being given back. A process that now and then needs tens
//! of megabytes at once (argon2's 19 MiB working memory, an image's decoded pixels) would keep
//! its peak for good. Fixed settings make the peak temporary: large blocks are always mapped
//! and unmapped, the heap's free top is trimmed, and the number of arenas (each holding its own
//! free memory) stays small.

/// Blocks of this size or more are mapped on their own and returned to the system when freed.
pub const MMAP_THRESHOLD: usize = 256 * 1024;
/// Free memory at the top of the heap beyond this is returned to the system.
pub const TRIM_THRESHOLD: usize = 1024 * 1024;
/// Malloc arenas at most (glibc's default is 8 per core; with a few threads, two keep
/// contention low and fragmentation bounded).
pub const ARENA_MAX: usize = 2;

/// Applies the settings above. Call first thing in `main`, before other threads start.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let settings = [
            (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (libc::M_ARENA_MAX, ARENA_MAX),
        ];
        for (param, value) in settings {
            let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
            // SAFETY: mallopt only changes malloc's tuning parameters; it is called before any
            // other thread exists, with parameters and values glibc documents. The only unsafe
            // code in the workspace: there is no safe binding for these settings.
            #[expect(unsafe_code, reason = "mallopt has no safe binding")]
            unsafe {
                libc::mallopt(param, value);
            }
        }
    }
}

/// Configures the allocator, then runs `main` on a multi-threaded Tokio runtime (what
/// `#[tokio::main]` would do, with the settings in place before its threads exist).
pub fn run<F: std::future::Future>(main: F) -> F::Output {
    configure();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the Tokio runtime could not be started")
        .block_on(main)
}
