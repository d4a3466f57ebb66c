//! The stages as commands: each calls one `sync-stages` (or `backup`)
//! function and turns its job record into a [`StageReport`]; [`run`]
//! runs a list of them in order and stops at the first failure.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sync_core::records::{Job, JobKind, JobStatus};
use sync_stages::send::{SendTargets, plan_send, run_send};

use crate::context::{Context, open_drop};
use crate::error::AppError;
use crate::payments;

/// A stage of the sync, by its command name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    ImportAlmaFines,
    ExportBurs,
    SftpToBurs,
    ImportAlmaPayments,
    BackupDb,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::ImportAlmaFines => "import-alma-fines",
            Stage::ExportBurs => "export-burs",
            Stage::SftpToBurs => "sftp-to-burs",
            Stage::ImportAlmaPayments => "import-alma-payments",
            Stage::BackupDb => "backup-db",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Stage::ImportAlmaFines => "reading the Alma Analytics reports",
            Stage::ExportBurs => "writing the Bursar files",
            Stage::SftpToBurs => "sending the files to the Bursar",
            Stage::ImportAlmaPayments => "posting the Bursar's payments to Alma",
            Stage::BackupDb => "backing up the store",
        }
    }
}

/// `today`: both directions and a backup.
pub const TODAY: &[Stage] = &[
    Stage::ImportAlmaFines,
    Stage::ExportBurs,
    Stage::SftpToBurs,
    Stage::ImportAlmaPayments,
    Stage::BackupDb,
];

/// `burs-fines`: Direction 1 and a backup.
pub const DIRECTION_ONE: &[Stage] = &[
    Stage::ImportAlmaFines,
    Stage::ExportBurs,
    Stage::SftpToBurs,
    Stage::BackupDb,
];

/// `pay-fines`: Direction 2 and a backup.
pub const PAY_FINES: &[Stage] = &[Stage::ImportAlmaPayments, Stage::BackupDb];

/// What one stage did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageReport {
    pub stage: &'static str,
    /// One line: the counts that are not zero, or what was done.
    pub summary: String,
    /// Reported by id; the stage still succeeded.
    pub problems: Vec<String>,
    /// Set when the stage failed.
    pub error: Option<String>,
}

/// What a command did, stage by stage: the run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub command: String,
    pub stages: Vec<StageReport>,
}

impl RunReport {
    pub fn new(command: &str) -> RunReport {
        RunReport {
            command: command.to_string(),
            stages: Vec::new(),
        }
    }

    pub fn failed(&self) -> bool {
        self.stages.iter().any(|s| s.error.is_some())
    }

    /// The summary as text, for the console and the webhook.
    pub fn text(&self, host: &str) -> String {
        let status = if self.failed() { "FAILED" } else { "done" };
        let mut text = format!("alma-bursar-sync {} on {host}: {status}", self.command);
        for stage in &self.stages {
            let mark = if stage.error.is_some() {
                "FAILED"
            } else {
                "ok"
            };
            text.push_str(&format!("\n- {} {mark}: {}", stage.stage, stage.summary));
            for problem in stage.problems.iter().take(20) {
                text.push_str(&format!("\n    problem: {problem}"));
            }
            if stage.problems.len() > 20 {
                text.push_str(&format!(
                    "\n    ... and {} more problems (see the log)",
                    stage.problems.len() - 20
                ));
            }
            if let Some(error) = &stage.error {
                text.push_str(&format!("\n    error: {error}"));
            }
        }
        text
    }
}

/// Counts that are not zero, as `name value, ...`.
pub fn summarize_counts(counts: &[(String, u64)]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(name, value)| *value != 0 && name != "last_full_sweep_day")
        .map(|(name, value)| format!("{} {value}", name.replace('_', " ")))
        .collect();
    if parts.is_empty() {
        "nothing to do".to_string()
    } else {
        parts.join(", ")
    }
}

fn from_job(stage: Stage, job: &Job) -> StageReport {
    StageReport {
        stage: stage.name(),
        summary: summarize_counts(&job.counts),
        problems: job.problems.clone(),
        error: None,
    }
}

/// A spinner on a terminal; nothing under cron.
fn spinner(stage: Stage) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(format!("{}: {}", stage.name(), stage.doing()));
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// Runs one stage.
pub async fn run_stage(ctx: &mut Context, stage: Stage) -> Result<StageReport, AppError> {
    let bar = spinner(stage);
    tracing::info!(stage = stage.name(), "starting");
    let result = match stage {
        Stage::ImportAlmaFines => import(ctx).await,
        Stage::ExportBurs => export(ctx).await,
        Stage::SftpToBurs => send(ctx).await,
        Stage::ImportAlmaPayments => payments::run(ctx).await,
        Stage::BackupDb => crate::backups::backup_db(ctx).await,
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match &result {
        Ok(report) => {
            tracing::info!(stage = stage.name(), summary = %report.summary, "done");
            for problem in &report.problems {
                tracing::warn!(stage = stage.name(), %problem, "problem");
            }
        }
        Err(error) => tracing::error!(stage = stage.name(), error = %error.chain(), "failed"),
    }
    result
}

/// Runs `stages` in order and stops at the first failure. The report has
/// every stage that ran; the error names the failing stage.
pub async fn run(
    ctx: &mut Context,
    command: &str,
    stages: &[Stage],
) -> (RunReport, Result<(), AppError>) {
    let mut report = RunReport::new(command);
    for &stage in stages {
        match run_stage(ctx, stage).await {
            Ok(stage_report) => report.stages.push(stage_report),
            Err(error) => {
                report.stages.push(StageReport {
                    stage: stage.name(),
                    summary: "failed".to_string(),
                    problems: Vec::new(),
                    error: Some(error.chain()),
                });
                let skipped: Vec<&str> = stages
                    .iter()
                    .skip_while(|s| **s != stage)
                    .skip(1)
                    .map(|s| s.name())
                    .collect();
                if !skipped.is_empty() {
                    tracing::warn!(skipped = %skipped.join(", "), "later stages not run");
                }
                return (report, Err(error));
            }
        }
    }
    (report, Ok(()))
}

async fn import(ctx: &mut Context) -> Result<StageReport, AppError> {
    let analytics = ctx.analytics().await?;
    let (job, _) = sync_stages::import::run_import(
        ctx.store(),
        &analytics,
        &ctx.settings.import,
        ctx.clock.now,
    )
    .await
    .map_err(|e| AppError::stage(Stage::ImportAlmaFines.name(), e))?;
    Ok(from_job(Stage::ImportAlmaFines, &job))
}

async fn export(ctx: &mut Context) -> Result<StageReport, AppError> {
    let (job, outcome) = sync_stages::export::run_export(
        ctx.store(),
        &ctx.settings.export,
        ctx.clock.run_date,
        ctx.clock.now,
    )
    .await
    .map_err(|e| AppError::stage(Stage::ExportBurs.name(), e))?;
    let mut report = from_job(Stage::ExportBurs, &job);
    if let Some(export) = &outcome.export {
        let files: Vec<&str> = [&export.charges_file, &export.reversals_file]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        report.summary = format!("{}; files {}", report.summary, files.join(", "));
    }
    Ok(report)
}

async fn send(ctx: &mut Context) -> Result<StageReport, AppError> {
    let name = Stage::SftpToBurs.name();
    let drop = open_drop(&ctx.settings.bursar).map_err(|e| AppError::stage(name, e))?;
    let targets = SendTargets {
        bursar: drop.folder.as_ref(),
        remote_archive: drop.archive.as_deref(),
        local_archive: ctx.settings.sent_archive.clone(),
    };
    let (job, outcome) = run_send(ctx.store(), &ctx.settings.export, &targets, ctx.clock.now)
        .await
        .map_err(|e| AppError::stage(name, e))?;
    let mut report = from_job(Stage::SftpToBurs, &job);
    if !outcome.files_uploaded.is_empty() {
        report.summary = format!(
            "{}; sent {} to {}",
            report.summary,
            outcome.files_uploaded.join(", "),
            ctx.settings.bursar.describe()
        );
    }
    Ok(report)
}

/// `sftp-to-burs --dry-run`: counts only; connects to nothing.
pub async fn send_dry_run(ctx: &Context) -> Result<String, AppError> {
    let outcome = plan_send(ctx.store())
        .await
        .map_err(|e| AppError::stage(Stage::SftpToBurs.name(), e))?;
    let exports: Vec<String> = outcome.exports.iter().map(u64::to_string).collect();
    Ok(format!(
        "Would send {} charge(s) and {} reversal(s) from {} unsent export(s){}.\n",
        outcome.charge_lines,
        outcome.reversal_lines,
        outcome.exports.len(),
        if exports.is_empty() {
            String::new()
        } else {
            format!(" ({})", exports.join(", "))
        }
    ))
}

/// Records a job for work that is not a `sync-stages` stage (backups and
/// restores): started and finished at once with the outcome's counts.
pub async fn record_job(
    ctx: &Context,
    kind: JobKind,
    started: chrono::DateTime<chrono::Utc>,
    counts: Vec<(String, u64)>,
    problems: Vec<String>,
    error: Option<String>,
) -> Result<Job, AppError> {
    let mut job = ctx
        .store()
        .start_job(kind, started)
        .await
        .map_err(AppError::StoreRead)?;
    job.finished_at = Some(chrono::Utc::now().max(started));
    job.status = if error.is_some() {
        JobStatus::Failed
    } else {
        JobStatus::Success
    };
    job.counts = counts;
    job.problems = problems;
    job.error = error;
    ctx.store()
        .finish_job(&job)
        .await
        .map_err(AppError::StoreRead)?;
    Ok(job)
}
