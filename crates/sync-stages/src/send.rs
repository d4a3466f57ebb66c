//! Direction 1, step 3: send (SPEC 6).
//!
//! Every unsent export, oldest first: each of its files is uploaded to the
//! Bursar's folder (temporary name, size check, rename; a file already
//! there with the same content from a run that died before recording is not
//! sent again), copied to the local and remote archive folders, and only
//! then is the export's sent time recorded. A crash anywhere re-runs to the
//! same end, and no file reaches the Bursar twice.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use fail::fail_point;
use fine_store::FineStore;
use sftp_transport::{IfMissing, LocalDir, RemoteDir, UploadOutcome};
use sync_core::records::{Job, JobKind};

use crate::error::StageError;
use crate::export::{ExportConfig, render_export, sweep_partial_files, write_file_once};
use crate::jobs::{JobOutcome, run_as_job};

/// Where sent files go.
pub struct SendTargets<'a> {
    /// The Bursar's drop folder.
    pub bursar: &'a dyn RemoteDir,
    /// Our archive folder on the Bursar's server, if any.
    pub remote_archive: Option<&'a dyn RemoteDir>,
    /// Our local archive folder, if any.
    pub local_archive: Option<PathBuf>,
}

/// What a send did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    pub dry_run: bool,
    pub exports: Vec<u64>,
    pub charge_lines: u64,
    pub reversal_lines: u64,
    pub files_uploaded: Vec<String>,
    /// Found on the server from an earlier run that died before recording.
    pub files_already_present: Vec<String>,
}

impl JobOutcome for SendOutcome {
    fn counts(&self) -> Vec<(String, u64)> {
        vec![
            ("exports".to_string(), self.exports.len() as u64),
            ("charge_lines".to_string(), self.charge_lines),
            ("reversal_lines".to_string(), self.reversal_lines),
            (
                "files_uploaded".to_string(),
                self.files_uploaded.len() as u64,
            ),
            (
                "files_already_present".to_string(),
                self.files_already_present.len() as u64,
            ),
        ]
    }

    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Counts the lines of each side of the unsent exports, for `--dry-run`.
pub async fn plan_send(store: &dyn FineStore) -> Result<SendOutcome, StageError> {
    let mut outcome = SendOutcome {
        dry_run: true,
        ..SendOutcome::default()
    };
    for export in store.unsent_exports().await? {
        for item in store.export_items(export.seq).await? {
            if item.transaction.amount.is_positive() {
                outcome.charge_lines += 1;
            } else {
                outcome.reversal_lines += 1;
            }
        }
        outcome.exports.push(export.seq);
    }
    Ok(outcome)
}

/// Runs the send stage. SFTP calls block; a stage runs alone, so they
/// simply run on the calling task.
pub async fn run_send(
    store: &dyn FineStore,
    config: &ExportConfig,
    targets: &SendTargets<'_>,
    now: DateTime<Utc>,
) -> Result<(Job, SendOutcome), StageError> {
    run_as_job(store, JobKind::BursSend, now, |_job| async move {
        // The send writes the exports' files too (below), so it sweeps
        // what a killed write left, as the export does.
        sweep_partial_files(&config.exports_dir)?;
        let mut outcome = plan_send(store).await?;
        outcome.dry_run = false;
        let local_archive = match &targets.local_archive {
            Some(path) => Some(LocalDir::open(path, IfMissing::Create)?),
            None => None,
        };
        for export in store.unsent_exports().await? {
            for (name, bytes) in render_export(store, &export, config).await? {
                // The file as rendered from the store: identical to the
                // one the export wrote, so the upload's size check and an
                // earlier run's partial work compare against the truth.
                let local = write_file_once(&config.exports_dir, &name, &bytes)?;
                match targets.bursar.upload_atomic(&local, &name)? {
                    UploadOutcome::Uploaded { .. } => outcome.files_uploaded.push(name.clone()),
                    UploadOutcome::AlreadyPresent { .. } => {
                        tracing::warn!(file = %name, "already on the Bursar's server from an earlier run; not sent again");
                        outcome.files_already_present.push(name.clone());
                    }
                }
                fail_point!("send-after-upload", |_| Err(crate::error::interrupted("send-after-upload")));
                if let Some(archive) = &local_archive {
                    archive.upload_atomic(&local, &name)?;
                }
                if let Some(archive) = targets.remote_archive {
                    archive.upload_atomic(&local, &name)?;
                }
            }
            fail_point!("send-before-mark", |_| Err(crate::error::interrupted("send-before-mark")));
            store.mark_export_sent(export.seq, now).await?;
            tracing::info!(export = export.seq, "sent");
        }
        Ok(outcome)
    })
    .await
}
