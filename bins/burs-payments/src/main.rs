//! `burs-payments`: Direction 2 (import-alma-payments) then backup-db, for
//! cron; the same as `alma-bursar-sync pay-fines`.

/// mimalloc: the import of a large institution spent a fifth of its time
/// in glibc's malloc/free and kept freed memory (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    alma_bursar_sync::cron::main(
        "burs-payments",
        "Direction 2 for cron: import-alma-payments, backup-db; stops at the first failing stage.",
        alma_bursar_sync::stages::PAY_FINES,
    )
}
