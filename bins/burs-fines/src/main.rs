//! `burs-fines`: Direction 1 (import-alma-fines, export-burs, sftp-to-burs)
//! then backup-db, for cron. `alma-bursar-sync today` does both directions.

/// mimalloc: the import of a large institution spent a fifth of its time
/// in glibc's malloc/free and kept freed memory (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    alma_bursar_sync::cron::main(
        "burs-fines",
        "Direction 1 for cron: import-alma-fines, export-burs, sftp-to-burs, backup-db; stops at the first failing stage.",
        alma_bursar_sync::stages::DIRECTION_ONE,
    )
}
