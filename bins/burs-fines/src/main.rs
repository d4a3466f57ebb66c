//! `burs-fines`: Direction 1 (import-alma-fines, export-burs, sftp-to-burs)
//! then backup-db, for cron. `alma-bursar-sync today` does both directions.

fn main() -> std::process::ExitCode {
    abs_allocator::return_freed_memory_promptly();
    alma_bursar_sync::cron::main(
        "burs-fines",
        "Direction 1 for cron: import-alma-fines, export-burs, sftp-to-burs, backup-db; stops at the first failing stage.",
        alma_bursar_sync::stages::DIRECTION_ONE,
    )
}
