//! The per-direction cron binaries (`burs-fines`, `burs-payments`): one
//! fixed list of stages each, `--config PATH` (or `ABS_CONFIG`) the only
//! option, the exit statuses of the operator CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::context::Clock;
use crate::stages::Stage;

#[derive(Debug, Parser)]
struct CronArgs {
    /// The configuration file (TOML).
    #[arg(
        long,
        env = "ABS_CONFIG",
        default_value = crate::config::DEFAULT_CONFIG,
        value_name = "PATH"
    )]
    config: PathBuf,

    /// This store is new: let this run fill it (see `alma-bursar-sync
    /// help`); without it a store that has never completed a stage is
    /// refused.
    #[arg(long)]
    new_store: bool,
}

/// The whole `main` of a cron binary.
pub fn main(name: &'static str, about: &'static str, stages: &[Stage]) -> ExitCode {
    let command = <CronArgs as clap::CommandFactory>::command()
        .name(name)
        .about(about);
    let args = match command
        .try_get_matches()
        .and_then(|matches| <CronArgs as clap::FromArgMatches>::from_arg_matches(&matches))
    {
        Ok(args) => args,
        Err(error) => return crate::usage_exit(error),
    };
    let runtime = match crate::runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let result = runtime.block_on(async {
        let clock = Clock::from_option(None)?;
        crate::run_stages(&args.config, name, stages, clock, args.new_store).await
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {}", error.chain());
            ExitCode::from(error.exit_code())
        }
    }
}
