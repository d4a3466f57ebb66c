//! `alma-bursar-sync`: the operator CLI. Parses the command line and runs
//! it; all the work is in the library (`alma_bursar_sync`).

use std::process::ExitCode;

use alma_bursar_sync::cli::Cli;
use clap::Parser;

fn main() -> ExitCode {
    abs_allocator::return_freed_memory_promptly();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return alma_bursar_sync::usage_exit(error),
    };
    let runtime = match alma_bursar_sync::runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    match runtime.block_on(alma_bursar_sync::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {}", error.chain());
            ExitCode::from(error.exit_code())
        }
    }
}
