//! The operator's tool: every stage of alma-bursar-sync as a command.
//!
//! The binary parses the command line ([`cli`]) and calls [`run`]; the
//! per-direction cron binaries call [`run_command`] with a fixed command.
//! A command first reads and checks the whole configuration ([`config`]):
//! any bad or missing setting, or a missing secret the command needs, stops
//! it before any work with every problem listed (exit status 2). Then the
//! logs are set up (console and a daily file, [`logging`]), the store is
//! opened ([`context`]) and the stages run in order ([`stages`]), each one
//! call into `sync-stages` or `backup`, stopping at the first failure. The
//! run summary goes to standard output and, when configured, to a
//! Slack-compatible webhook ([`notify`]).
//!
//! No business logic lives here: what a stage does is `sync-stages`'
//! business; this crate wires configuration to it and reports.

pub mod backups;
pub mod cli;
pub mod config;
pub mod context;
pub mod cron;
pub mod error;
pub mod logging;
pub mod notify;
pub mod payments;
pub mod rehearsal;
pub mod show;
pub mod stages;

use std::io::Write;
use std::path::{Path, PathBuf};

use cli::{Cli, Command, EXIT_DONE};
use config::{Needs, Settings};
use context::{Clock, Context};
pub use error::AppError;
use stages::{DIRECTION_ONE, PAY_FINES, RunReport, Stage, TODAY};

/// Runs a parsed command line; returns the exit status of a command that
/// ran to its end (0), or the error that stopped it.
pub async fn run(cli: Cli) -> Result<u8, AppError> {
    let clock = Clock::from_option(cli.now.as_deref())?;
    run_command(cli.command, &cli.config, clock, cli.new_store).await
}

/// Which secrets a command needs.
fn needs(command: &Command) -> Needs {
    let mut needs = Needs::STORE;
    match command {
        Command::Today | Command::CheckConfig => return Needs::ALL,
        Command::PayFines | Command::ImportAlmaPayments => {
            needs.alma = true;
            needs.payments_drop = true;
        }
        Command::ImportAlmaFines => needs.alma = true,
        Command::SftpToBurs { dry_run: false } => needs.bursar_drop = true,
        _ => {}
    }
    needs
}

fn print(text: &str) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(AppError::Output)
}

/// Loads the configuration, sets up the logs and opens the store.
async fn open(config: &Path, needs: Needs, clock: Clock) -> Result<Context, AppError> {
    let settings = config::load(config, needs)?;
    logging::init(&settings.logging)?;
    tracing::debug!(config = %settings.file.display(), "configuration loaded");
    Context::open(settings, clock).await
}

/// Runs `command` with the configuration file `config`.
/// `new_store` lets stages run on a store that has never completed one.
pub async fn run_command(
    command: Command,
    config: &Path,
    clock: Clock,
    new_store: bool,
) -> Result<u8, AppError> {
    let needs = needs(&command);
    match command {
        Command::Help { command } => {
            print(&help(command.as_deref())?)?;
            Ok(EXIT_DONE)
        }
        Command::CheckConfig => {
            let settings = config::load(config, needs)?;
            print(&check_report(&settings))?;
            Ok(EXIT_DONE)
        }
        Command::Rehearse { dir, days } => rehearse(dir, days, clock).await,
        Command::Today => {
            stage_command(open(config, needs, clock).await?, "today", TODAY, new_store).await
        }
        Command::PayFines => {
            stage_command(
                open(config, needs, clock).await?,
                "pay-fines",
                PAY_FINES,
                new_store,
            )
            .await
        }
        Command::ImportAlmaFines => {
            let ctx = open(config, needs, clock).await?;
            stage_command(
                ctx,
                "import-alma-fines",
                &[Stage::ImportAlmaFines],
                new_store,
            )
            .await
        }
        Command::ExportBurs => {
            let ctx = open(config, needs, clock).await?;
            stage_command(ctx, "export-burs", &[Stage::ExportBurs], new_store).await
        }
        Command::SftpToBurs { dry_run: true } => {
            let ctx = open(config, needs, clock).await?;
            print(&stages::send_dry_run(&ctx).await?)?;
            Ok(EXIT_DONE)
        }
        Command::SftpToBurs { dry_run: false } => {
            let ctx = open(config, needs, clock).await?;
            stage_command(ctx, "sftp-to-burs", &[Stage::SftpToBurs], new_store).await
        }
        Command::ImportAlmaPayments => {
            let ctx = open(config, needs, clock).await?;
            stage_command(
                ctx,
                "import-alma-payments",
                &[Stage::ImportAlmaPayments],
                new_store,
            )
            .await
        }
        Command::BackupDb => {
            let ctx = open(config, needs, clock).await?;
            stage_command(ctx, "backup-db", &[Stage::BackupDb], new_store).await
        }
        Command::RestoreLast => {
            let ctx = open(config, needs, clock).await?;
            let _lock = context::lock_runs(&ctx.settings.store, "restore-last", clock.now)?;
            let result = backups::restore_last(&ctx).await;
            finish_restore(&ctx, "restore-last", result).await
        }
        Command::RestoreChoose(args) => {
            let ctx = open(config, needs, clock).await?;
            let _lock = context::lock_runs(&ctx.settings.store, "restore-choose", clock.now)?;
            let stdin = std::io::stdin();
            let result = backups::restore_choose(
                &ctx,
                args.pick,
                args.file.as_deref(),
                args.from_s3,
                stdin.lock(),
                std::io::stdout(),
            )
            .await;
            finish_restore(&ctx, "restore-choose", result).await
        }
        Command::LookupFine(args) => {
            let ctx = open(config, needs, clock).await?;
            let query = match (&args.root_alma_fine_id, &args.alma_loan_id) {
                (Some(id), _) => show::Lookup::Fine(id),
                (None, Some(loan)) => show::Lookup::Loan(loan),
                (None, None) => {
                    return Err(AppError::Usage(
                        "lookup-fine needs --root-alma-fine-id ID or --alma-loan-id ID".to_string(),
                    ));
                }
            };
            let view = show::lookup(ctx.store(), query).await?;
            if args.json {
                print(&json(&view)?)?;
            } else {
                print(&show::render_lookup(&view))?;
            }
            Ok(EXIT_DONE)
        }
        Command::PrintLastExport { json: as_json } => {
            let ctx = open(config, needs, clock).await?;
            match show::last_export(ctx.store()).await? {
                None if as_json => print("null\n")?,
                None => print(
                    "No export yet: export-burs makes one when there is something to bill.\n",
                )?,
                Some(view) if as_json => print(&json(&view)?)?,
                Some(view) => print(&show::render_export(&view))?,
            }
            Ok(EXIT_DONE)
        }
    }
}

fn json(value: &impl serde::Serialize) -> Result<String, AppError> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|e| AppError::Output(std::io::Error::other(e)))
}

fn help(command: Option<&str>) -> Result<String, AppError> {
    use clap::CommandFactory;
    let Some(name) = command else {
        return Ok(cli::help_text());
    };
    let mut root = Cli::command();
    let found = root
        .get_subcommands_mut()
        .find(|c| c.get_name() == name || c.get_all_aliases().any(|alias| alias == name));
    match found {
        Some(sub) => Ok(sub.render_long_help().to_string()),
        None => Err(AppError::Usage(format!(
            "no command {name:?}; `alma-bursar-sync help` lists them"
        ))),
    }
}

fn check_report(settings: &Settings) -> String {
    let mut text = format!("Configuration {} is good.\n", settings.file.display());
    if settings.rehearsal.is_some() {
        text.push_str("  Alma:            the built-in simulated Alma (rehearsal)\n");
    } else {
        text.push_str(&format!("  Alma:            {}\n", settings.alma.base_url));
    }
    text.push_str(&format!(
        "  store:           {}\n",
        settings.store.describe()
    ));
    text.push_str(&format!(
        "  Bursar drop:     {}\n",
        settings.bursar.describe()
    ));
    text.push_str(&format!(
        "  payments drop:   {} (files {}*)\n",
        settings.payments.drop.describe(),
        settings.payments.prefix
    ));
    text.push_str(&format!(
        "  exports:         {}\n",
        settings.export.exports_dir.display()
    ));
    let s3 = settings
        .backup
        .s3
        .as_ref()
        .map(|s3| format!(" and s3://{}/{}", s3.bucket, s3.key_prefix()))
        .unwrap_or_default();
    text.push_str(&format!(
        "  backups:         {}{s3}\n",
        settings.backup.local_dir.display()
    ));
    text.push_str(&format!(
        "  logs:            {}\n",
        settings.logging.dir.display()
    ));
    text.push_str(&format!(
        "  webhook:         {}\n",
        if settings.notify.webhook_url.is_some() {
            "configured"
        } else {
            "none"
        }
    ));
    text
}

/// Posts the summary to the webhook, if configured; a failure is logged.
async fn notify(settings: &Settings, report: &RunReport, text: &str) {
    let Some(url) = &settings.notify.webhook_url else {
        return;
    };
    match notify::post_webhook(url, text, settings.notify.timeout).await {
        Ok(()) => tracing::info!(command = %report.command, "run summary posted to the webhook"),
        Err(error) => {
            tracing::warn!(%error, "the run summary could not be posted; it is in the log")
        }
    }
}

/// Runs `stages` as the command `command` with the configuration `config`
/// (the per-direction cron binaries).
pub async fn run_stages(
    config: &Path,
    command: &str,
    stages: &[Stage],
    clock: Clock,
    new_store: bool,
) -> Result<u8, AppError> {
    let needs = Needs {
        alma: stages
            .iter()
            .any(|s| matches!(s, Stage::ImportAlmaFines | Stage::ImportAlmaPayments)),
        bursar_drop: stages.contains(&Stage::SftpToBurs),
        payments_drop: stages.contains(&Stage::ImportAlmaPayments),
        store: true,
    };
    stage_command(
        open(config, needs, clock).await?,
        command,
        stages,
        new_store,
    )
    .await
}

async fn stage_command(
    mut ctx: Context,
    command: &str,
    stages: &[Stage],
    new_store: bool,
) -> Result<u8, AppError> {
    let _lock = context::lock_runs(&ctx.settings.store, command, ctx.clock.now)?;
    if !new_store {
        context::refuse_unused_store(&ctx).await?;
    }
    context::settle_dead_runs(&ctx).await?;
    let (report, result) = stages::run(&mut ctx, command, stages).await;
    let text = report.text(&notify::host_name());
    print(&format!("{text}\n"))?;
    notify(&ctx.settings, &report, &text).await;
    result.map(|()| EXIT_DONE)
}

async fn finish_restore(
    ctx: &Context,
    command: &str,
    result: Result<String, AppError>,
) -> Result<u8, AppError> {
    let mut report = RunReport::new(command);
    let stage = match &result {
        Ok(text) => stages::StageReport {
            stage: "restore",
            summary: text.lines().next().unwrap_or_default().to_string(),
            problems: Vec::new(),
            error: None,
        },
        Err(error) => stages::StageReport {
            stage: "restore",
            summary: "failed".to_string(),
            problems: Vec::new(),
            error: Some(error.chain()),
        },
    };
    report.stages.push(stage);
    if let Ok(text) = &result {
        print(text)?;
    }
    notify(&ctx.settings, &report, &report.text(&notify::host_name())).await;
    result.map(|_| EXIT_DONE)
}

/// `rehearse`: prepares the folder, runs `today` on it (and Direction 1
/// on the scenario's second day, unless `days` is 1), says where
/// everything is.
async fn rehearse(dir: Option<PathBuf>, days: u8, clock: Clock) -> Result<u8, AppError> {
    let dir = match dir {
        Some(dir) => dir,
        None => tempfile::Builder::new()
            .prefix("abs-rehearsal-")
            .tempdir()
            .map_err(|e| {
                AppError::io(
                    "cannot create a temporary folder in",
                    std::env::temp_dir(),
                    e,
                )
            })?
            .keep(),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let config = rehearsal::prepare(&dir)?;
    print(&format!("Rehearsal in {}\n", dir.display()))?;
    let ctx = open(&config, Needs::ALL, clock).await?;
    let (report, result) = {
        let mut ctx = ctx;
        let (report, result) = stages::run(&mut ctx, "today (rehearsal, day 1)", TODAY).await;
        let text = report.text(&notify::host_name());
        print(&format!("{text}\n\n"))?;
        notify(&ctx.settings, &report, &text).await;
        if let Some(sim) = ctx.simulated() {
            let payments = sim.payments();
            let mut lines = format!(
                "The simulated Alma received {} payment(s):\n",
                payments.len()
            );
            for p in &payments {
                lines.push_str(&format!(
                    "  fee {} of {}: {} {} ({})\n",
                    p.fee_id, p.user_id, p.method, p.amount, p.comment
                ));
            }
            print(&format!("{lines}\n"))?;
        }
        let day_one = days > 1
            && ctx
                .settings
                .rehearsal
                .as_ref()
                .is_some_and(|r| r.scenario == "day1");
        if !(day_one && result.is_ok()) {
            print(&rehearsal::locations(&ctx.settings))?;
        }
        (report, result.map(|()| day_one))
    };
    // Day 2 of the scenario (a waive, a split credit, payments seen in
    // Alma), so the rehearsal shows a reversals file too. Day 1 failing
    // stops here, as `today` would.
    let result = match result {
        Ok(true) => {
            let mut settings = config::load(&config, Needs::ALL)?;
            if let Some(rehearsal) = settings.rehearsal.as_mut() {
                rehearsal.scenario = "day2".to_string();
            }
            let mut ctx = Context::open(settings, clock).await?;
            let (report, result) =
                stages::run(&mut ctx, "Direction 1 (rehearsal, day 2)", DIRECTION_ONE).await;
            let text = report.text(&notify::host_name());
            print(&format!("{text}\n\n"))?;
            notify(&ctx.settings, &report, &text).await;
            print(&rehearsal::locations(&ctx.settings))?;
            result
        }
        other => other.map(|_| ()),
    };
    let config_arg = config.display();
    // As invoked: a newcomer ran `cargo run`, so the bare command name is
    // not on their PATH, but the path cargo ran is.
    let program = std::env::args()
        .next()
        .filter(|arg0| arg0.contains('/'))
        .unwrap_or_else(|| "alma-bursar-sync".to_string());
    print(&format!(
        "\nTry:\n  {program} --config {config_arg} lookup-fine --root-alma-fine-id 2200000001\n  {program} --config {config_arg} print-last-export\n  {program} --config {config_arg} restore-choose\n"
    ))?;
    let _ = report;
    result.map(|()| EXIT_DONE)
}

/// The exit of a command line clap refused: `--help` and `--version`
/// print to stdout and succeed; anything else is bad usage.
pub fn usage_exit(error: clap::Error) -> std::process::ExitCode {
    let code = if error.use_stderr() {
        cli::EXIT_USAGE
    } else {
        EXIT_DONE
    };
    let _ = error.print();
    std::process::ExitCode::from(code)
}

/// The async runtime every binary runs its command on.
pub fn runtime() -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("error: cannot start the async runtime: {error}");
            std::process::ExitCode::from(cli::EXIT_FAILED)
        })
}
