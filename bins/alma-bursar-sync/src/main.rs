//! `alma-bursar-sync`: the operator CLI. Parses the command line and runs
//! it; all the work is in the library (`alma_bursar_sync`).

use std::process::ExitCode;

use alma_bursar_sync::cli::{Cli, EXIT_DONE, EXIT_FAILED, EXIT_USAGE};
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version print to stdout and succeed; anything
            // else is bad usage.
            let code = if error.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_DONE
            };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(alma_bursar_sync::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {}", error.chain());
            ExitCode::from(error.exit_code())
        }
    }
}
