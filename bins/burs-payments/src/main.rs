//! `burs-payments`: Direction 2 (import-alma-payments) then backup-db, for
//! cron; the same as `alma-bursar-sync pay-fines`.

fn main() -> std::process::ExitCode {
    abs_allocator::return_freed_memory_promptly();
    alma_bursar_sync::cron::main(
        "burs-payments",
        "Direction 2 for cron: import-alma-payments, backup-db; stops at the first failing stage.",
        alma_bursar_sync::stages::PAY_FINES,
    )
}
