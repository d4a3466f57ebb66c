//! `backup-db`, `restore-last`, `restore-choose`: the `backup` crate's
//! functions, each recorded as a job. A backup's job is recorded after the
//! archive is written (so a restored backup holds no job stuck In
//! Progress); a restore's job after the load, since the load replaces
//! every job.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use backup::{BackupError, Choice, RestoreReport, S3Outcome};
use sync_core::records::JobKind;

use crate::context::Context;
use crate::error::AppError;
use crate::stages::{StageReport, record_job, summarize_counts};

/// `backup-db`. An S3 copy that failed fails the stage (the local copy is
/// in place and named in the message).
pub async fn backup_db(ctx: &mut Context) -> Result<StageReport, AppError> {
    let started = ctx.clock.now;
    let result = backup::backup(ctx.store(), &ctx.settings.backup).await;
    let report = match result {
        Err(error) => {
            let message = error.to_string();
            let _ = record_job(
                ctx,
                JobKind::Backup,
                started,
                Vec::new(),
                Vec::new(),
                Some(message),
            )
            .await;
            return Err(AppError::stage("backup-db", error));
        }
        Ok(report) => report,
    };
    let mut counts: Vec<(String, u64)> = report
        .manifest
        .counts()
        .into_iter()
        .map(|(name, count)| (name.to_string(), count))
        .collect();
    counts.push((
        "old_backups_removed".to_string(),
        report.removed.len() as u64,
    ));
    let problems: Vec<String> = report
        .rotation_problems
        .iter()
        .map(ToString::to_string)
        .collect();
    let s3_error = report.s3_error().map(|e| {
        format!(
            "the local backup {} is in place, but its S3 copy failed: {e}",
            report.local.path.display()
        )
    });
    record_job(
        ctx,
        JobKind::Backup,
        started,
        counts.clone(),
        problems.clone(),
        s3_error.clone(),
    )
    .await?;
    if let Some(message) = s3_error {
        return Err(AppError::Stage {
            stage: "backup-db",
            source: message.into(),
        });
    }
    let where_to = match &report.s3 {
        S3Outcome::Uploaded(copy) => format!(" and s3://{}/{}", copy.bucket, copy.key),
        _ => String::new(),
    };
    Ok(StageReport {
        stage: "backup-db",
        summary: format!(
            "{} records to {}{where_to}",
            report.manifest.total_records(),
            report.local.path.display()
        ),
        problems,
        error: None,
    }
    .with_counts(&counts))
}

impl StageReport {
    fn with_counts(mut self, counts: &[(String, u64)]) -> StageReport {
        self.summary = format!("{} ({})", self.summary, summarize_counts(counts));
        self
    }
}

/// Records the restore (after the load) and describes it.
async fn finish_restore(
    ctx: &Context,
    result: Result<RestoreReport, BackupError>,
) -> Result<String, AppError> {
    let started = ctx.clock.now;
    match result {
        Ok(report) => {
            let counts: Vec<(String, u64)> = report
                .manifest
                .counts()
                .into_iter()
                .map(|(name, count)| (name.to_string(), count))
                .collect();
            record_job(ctx, JobKind::Restore, started, counts, Vec::new(), None).await?;
            Ok(format!(
                "Restored {} into {} ({} records).\nThe state before the restore is saved in {}; restore-choose --file with it undoes this.\n",
                report.archive.display(),
                report.store,
                report.manifest.total_records(),
                report.safety.path.display()
            ))
        }
        Err(error) => {
            let _ = record_job(
                ctx,
                JobKind::Restore,
                started,
                Vec::new(),
                Vec::new(),
                Some(error.to_string()),
            )
            .await;
            Err(AppError::from(error))
        }
    }
}

pub async fn restore_last(ctx: &Context) -> Result<String, AppError> {
    let result = backup::restore_last(ctx.store(), &ctx.settings.backup).await;
    finish_restore(ctx, result).await
}

pub async fn restore_file(ctx: &Context, path: &Path) -> Result<String, AppError> {
    let result = backup::restore_from_file(ctx.store(), path, &ctx.settings.backup).await;
    finish_restore(ctx, result).await
}

/// What `restore-choose` chooses from.
enum Listing {
    Local(Vec<PathBuf>),
    S3(Vec<String>),
}

async fn listing(ctx: &Context, from_s3: bool) -> Result<(Vec<Choice>, Listing), AppError> {
    if from_s3 {
        let Some(s3) = &ctx.settings.backup.s3 else {
            return Err(AppError::Usage(
                "--from-s3: there is no [backup.s3] section in the configuration".to_string(),
            ));
        };
        let backups = backup::list_s3(s3).await.map_err(BackupError::from)?;
        let mut rows = Vec::new();
        let mut keys = Vec::new();
        for found in backups.into_iter().take(backup::CHOICES) {
            let manifest = backup::s3_manifest(s3, &found.key)
                .await
                .map_err(|e| e.to_string());
            rows.push(Choice::s3(&found, manifest.as_ref().map_err(Clone::clone)));
            keys.push(found.key);
        }
        Ok((rows, Listing::S3(keys)))
    } else {
        let backups = backup::list_local(&ctx.settings.backup.local_dir)?;
        let chosen: Vec<_> = backups.into_iter().take(backup::CHOICES).collect();
        let rows = chosen.iter().map(Choice::local).collect();
        Ok((
            rows,
            Listing::Local(chosen.into_iter().map(|b| b.path).collect()),
        ))
    }
}

/// `restore-choose`: `--file`, `--pick N`, or a prompt on the terminal.
pub async fn restore_choose(
    ctx: &Context,
    pick: Option<usize>,
    file: Option<&Path>,
    from_s3: bool,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<String, AppError> {
    if let Some(path) = file {
        return restore_file(ctx, path).await;
    }
    let (rows, listing) = listing(ctx, from_s3).await?;
    let index = match pick {
        Some(n) => {
            backup::write_listing(&rows, &mut output).map_err(AppError::Output)?;
            backup::pick(n, rows.len())?
        }
        None => match backup::choose(&rows, input, &mut output).map_err(AppError::Output)? {
            Some(index) => index,
            None => return Ok("Nothing restored.\n".to_string()),
        },
    };
    match listing {
        Listing::Local(paths) => match paths.get(index) {
            Some(path) => restore_file(ctx, path).await,
            None => Err(AppError::Usage(format!("no backup number {}", index + 1))),
        },
        Listing::S3(keys) => match keys.get(index) {
            Some(key) => {
                let result = backup::restore_from_s3(ctx.store(), key, &ctx.settings.backup).await;
                finish_restore(ctx, result).await
            }
            None => Err(AppError::Usage(format!("no backup number {}", index + 1))),
        },
    }
}
