//! Benchmarks of alma-bursar-sync (issue 10). See `docs/performance.md`.
//!
//! - `abs-bench direction1`: a synthesized institution (default 200,000
//!   fines, 1,000,000 Alma transactions, 100,000 patrons) served as paged
//!   Analytics XML by a simulated Alma in a child process; import, export
//!   and a no-change re-run timed, with peak memory and rows per second.
//! - `abs-bench payments`: Direction 2 against a mock Alma with a fixed
//!   latency, the achieved request rate against the client's limit.
//! - `abs-bench crash`: the randomized crash test.
//!
//! `serve-alma`, `serve-fees` and `run-scenario` are the child processes
//! the three start.

// Timings, rates and memory figures are f64; no money is computed in this
// crate with floats (amounts are synthesized as integer cents).
#![allow(clippy::float_arithmetic)]

mod bursar_payments;
mod crash;
mod direction1;
mod error;
mod measure;
mod payments;
mod profile;
mod rig;
mod serve;
mod synth;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::BenchError;
use crate::rig::StoreChoice;
use crate::synth::Size;

#[derive(Parser)]
#[command(name = "abs-bench", about = "Benchmarks of alma-bursar-sync")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum StoreKind {
    Sqlite,
    Mongodb,
}

#[derive(clap::Args, Clone)]
struct SizeArgs {
    /// Seed of the synthesis: the same seed gives the same institution.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fines on day 1.
    #[arg(long, default_value_t = 200_000)]
    fines: u64,
    /// Alma transactions on day 1 (default: five per fine).
    #[arg(long)]
    transactions: Option<u64>,
    /// Patrons (default: one per two fines).
    #[arg(long)]
    patrons: Option<u64>,
}

impl SizeArgs {
    fn size(&self) -> Size {
        let scaled = Size::scaled(self.seed, self.fines);
        Size {
            transactions: self.transactions.unwrap_or(scaled.transactions),
            patrons: self.patrons.unwrap_or(scaled.patrons),
            ..scaled
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Import, export and a no-change re-run of a synthesized institution.
    Direction1 {
        #[command(flatten)]
        size: SizeArgs,
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreKind,
        #[arg(
            long,
            default_value = "mongodb://127.0.0.1:27018/?directConnection=true"
        )]
        mongodb_uri: String,
        /// The Alma client's rate limit. Production uses about 10; the
        /// benchmark measures the sync, not the limit.
        #[arg(long, default_value_t = 1000)]
        rps: u32,
        /// Skip day 2 (new fines, reversals of billed ones).
        #[arg(long)]
        no_day2: bool,
        /// Folder for the store and files (default: the system's temp).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Direction 2 against a mock Alma with a fixed latency.
    Payments {
        #[arg(long, default_value_t = 20_000)]
        rows: u64,
        #[arg(long, default_value_t = 10)]
        latency_ms: u64,
        #[arg(long, default_value_t = 50)]
        rps: u32,
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreKind,
        #[arg(
            long,
            default_value = "mongodb://127.0.0.1:27018/?directConnection=true"
        )]
        mongodb_uri: String,
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Import and export taken apart into their steps, each timed, with
    /// the resident memory after it (where `direction1`'s time goes).
    Profile {
        #[command(flatten)]
        size: SizeArgs,
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreKind,
        #[arg(
            long,
            default_value = "mongodb://127.0.0.1:27018/?directConnection=true"
        )]
        mongodb_uri: String,
        /// Stop after the first import, so that a heap profiler's peak is
        /// the import's.
        #[arg(long)]
        import_only: bool,
    },
    /// The randomized crash test.
    Crash {
        #[arg(long, default_value_t = 200)]
        runs: u64,
        /// `one`: import, export, send; `both`: then payments.
        #[arg(long, value_enum, default_value = "both")]
        direction: crash::Directions,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 2_000)]
        fines: u64,
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// (child) Serve the synthesized reports; prints `URL <uri>`.
    ServeAlma {
        #[command(flatten)]
        size: SizeArgs,
        /// Days whose reports are served, e.g. `1,2`.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        days: Vec<u8>,
    },
    /// (child) Serve the fees API with a latency; prints `URL <uri>`.
    ServeFees {
        /// Serve this many synthetic fees (the payments benchmark's).
        #[arg(long, required_unless_present = "institution")]
        rows: Option<u64>,
        /// Serve the fees of the synthesized institution (`--seed`,
        /// `--fines`, ...) as Alma holds them after `--day`.
        #[arg(long, conflicts_with = "rows")]
        institution: bool,
        #[command(flatten)]
        size: SizeArgs,
        #[arg(long, default_value_t = 2)]
        day: u8,
        #[arg(long, default_value_t = 10)]
        latency_ms: u64,
    },
    /// (child) Run the crash test's scenario to completion in `--dir`.
    RunScenario {
        #[arg(long)]
        alma: String,
        /// The fees mock: with it, Direction 2 (payments) follows
        /// Direction 1.
        #[arg(long)]
        fees: Option<String>,
        /// The seed of the Bursar's payments file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        dir: PathBuf,
    },
}

fn store_choice(kind: StoreKind, uri: String) -> StoreChoice {
    match kind {
        StoreKind::Sqlite => StoreChoice::Sqlite,
        StoreKind::Mongodb => StoreChoice::Mongo { uri },
    }
}

async fn run(cli: Cli) -> Result<Option<String>, BenchError> {
    match cli.command {
        Cmd::Direction1 {
            size,
            store,
            mongodb_uri,
            rps,
            no_day2,
            work_dir,
        } => direction1::run(direction1::Direction1Args {
            size: size.size(),
            store: store_choice(store, mongodb_uri),
            work_dir,
            requests_per_second: rps,
            day2: !no_day2,
        })
        .await
        .map(Some),
        Cmd::Payments {
            rows,
            latency_ms,
            rps,
            store,
            mongodb_uri,
            work_dir,
        } => payments::run(payments::PaymentsArgs {
            rows,
            latency: Duration::from_millis(latency_ms),
            requests_per_second: rps,
            store: store_choice(store, mongodb_uri),
            work_dir,
        })
        .await
        .map(Some),
        Cmd::Profile {
            size,
            store,
            mongodb_uri,
            import_only,
        } => profile::run(size.size(), store_choice(store, mongodb_uri), import_only)
            .await
            .map(Some),
        Cmd::Crash {
            runs,
            direction,
            seed,
            fines,
            work_dir,
        } => crash::crash(crash::CrashArgs {
            runs,
            directions: direction,
            size: Size::scaled(seed, fines),
            work_dir,
        })
        .await
        .map(Some),
        Cmd::ServeAlma { size, days } => serve::serve_alma(size.size(), &days).await.map(|()| None),
        Cmd::ServeFees {
            rows,
            institution,
            size,
            day,
            latency_ms,
        } => {
            let source = match rows {
                Some(rows) if !institution => serve::FeeSource::Rows(rows),
                _ => serve::FeeSource::Institution {
                    size: size.size(),
                    day,
                },
            };
            serve::serve_fees(source, Duration::from_millis(latency_ms))
                .await
                .map(|()| None)
        }
        Cmd::RunScenario {
            alma,
            fees,
            seed,
            dir,
        } => crash::run_scenario(&alma, fees.as_deref(), seed, &dir)
            .await
            .map(|()| None),
    }
}

fn main() -> ExitCode {
    // The shipped binaries' allocator, so that the figures are theirs
    // (see the feature in Cargo.toml for heap profilers).
    #[cfg(feature = "shipped-allocator")]
    abs_allocator::return_freed_memory_promptly();
    let cli = Cli::parse();
    // Warnings of the stages (quarantines, reported credits) would flood
    // the terminal at this size; errors still show.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ABS_BENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("abs-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Some(report)) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("abs-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
