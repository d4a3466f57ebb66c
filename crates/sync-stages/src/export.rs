//! Direction 1, step 2: export (SPEC 5).
//!
//! Steps, each all-or-nothing: record the job; make sure every unsent
//! export's files exist (a run that died after committing an export but
//! before writing its files is completed here); decide every fine with
//! pending Alma transactions and commit the decisions; commit one export of
//! all pending-export Bursar transactions; render its files from the store
//! into the exports folder. Files are written under a temporary name and
//! moved into place, and never over a file with other content.

use std::io::Write;
use std::path::{Path, PathBuf};

use bursar_format::{FileSide, Layout, render_file};
use chrono::{DateTime, NaiveDate, Utc};
use fail::fail_point;
use fine_store::FineStore;
use sftp_transport::{IfMissing, LocalDir, RemoteDir};
use sync_core::records::{Export, Job, JobKind};

use crate::error::StageError;
use crate::export_plan::{BillingRules, export_lines, plan_commit, plan_decisions};
use crate::import_plan::Problem;
use crate::jobs::{JobOutcome, run_as_job};

#[derive(Clone, Debug)]
pub struct ExportConfig {
    pub layout: Layout,
    pub billing: BillingRules,
    /// Where the charge and reversal files are written.
    pub exports_dir: PathBuf,
}

/// What an export did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOutcome {
    /// The export committed by this run; None when nothing was pending.
    pub export: Option<Export>,
    /// Files of earlier exports that had to be written again.
    pub files_restored: u64,
    pub charges: u64,
    pub reversals: u64,
    pub nothing_to_send: u64,
    pub problems: Vec<Problem>,
}

impl JobOutcome for ExportOutcome {
    fn counts(&self) -> Vec<(String, u64)> {
        vec![
            (
                "export".to_string(),
                self.export.as_ref().map_or(0, |e| e.seq),
            ),
            (
                "lines".to_string(),
                self.export.as_ref().map_or(0, |e| e.line_count),
            ),
            ("fines_charged".to_string(), self.charges),
            ("fines_reversed".to_string(), self.reversals),
            ("fines_nothing_to_send".to_string(), self.nothing_to_send),
            ("fines_quarantined".to_string(), self.problems.len() as u64),
            ("files_restored".to_string(), self.files_restored),
        ]
    }

    fn problems(&self) -> Vec<String> {
        self.problems.iter().map(ToString::to_string).collect()
    }
}

/// The files of `export`, rendered from the store, byte for byte the same
/// on every call.
pub async fn render_export(
    store: &dyn FineStore,
    export: &Export,
    config: &ExportConfig,
) -> Result<Vec<(String, Vec<u8>)>, StageError> {
    let items = store.export_items(export.seq).await?;
    let (charges, reversals) = export_lines(export, &items, &config.billing)?;
    let mut files = Vec::new();
    for (side, name, lines) in [
        (FileSide::Charges, &export.charges_file, charges),
        (FileSide::Reversals, &export.reversals_file, reversals),
    ] {
        let Some(name) = name else { continue };
        let rendered = render_file(
            &config.layout,
            &lines,
            side,
            export.seq,
            export.billing_date,
        )
        .map_err(|source| StageError::Render {
            export: export.seq,
            source,
        })?;
        let Some(rendered) = rendered else {
            return Err(StageError::MissingLines {
                export: export.seq,
                file: name.clone(),
            });
        };
        files.push((name.clone(), rendered.bytes));
    }
    Ok(files)
}

/// Writes `bytes` as `dir/name` atomically; an identical file already
/// there is fine, a different one is an error naming it.
pub fn write_file_once(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, StageError> {
    let folder = LocalDir::open(dir, IfMissing::Create)?;
    let mut staged = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| StageError::io("creating a temporary file in", dir, e))?;
    staged
        .write_all(bytes)
        .and_then(|()| staged.as_file().sync_all())
        .map_err(|e| StageError::io("writing a temporary file in", dir, e))?;
    folder.upload_atomic(staged.path(), name)?;
    Ok(dir.join(name))
}

/// Makes sure the files of every unsent export are in the exports folder;
/// returns how many had to be written.
pub async fn restore_unsent_files(
    store: &dyn FineStore,
    config: &ExportConfig,
) -> Result<u64, StageError> {
    let mut restored = 0;
    for export in store.unsent_exports().await? {
        for (name, bytes) in render_export(store, &export, config).await? {
            if !config.exports_dir.join(&name).exists() {
                write_file_once(&config.exports_dir, &name, &bytes)?;
                tracing::info!(file = %name, export = export.seq, "rewrote the file of an export that was not written");
                restored += 1;
            }
        }
    }
    Ok(restored)
}

/// Runs the export stage for `run_date` (the billing date of its charges).
pub async fn run_export(
    store: &dyn FineStore,
    config: &ExportConfig,
    run_date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(Job, ExportOutcome), StageError> {
    run_as_job(store, JobKind::BursExport, now, |_job| async move {
        let files_restored = restore_unsent_files(store, config).await?;

        let ledgers = store.ledgers_with_pending_alma().await?;
        let decisions = plan_decisions(&ledgers, now);
        store.apply(&decisions.changes).await?;
        fail_point!("export-after-decisions", |_| Err(
            crate::error::interrupted("export-after-decisions")
        ));
        let problems = decisions.problems();
        for problem in &problems {
            tracing::warn!(%problem, "fine quarantined");
        }

        let items = store.pending_export().await?;
        let seq = store.last_export().await?.map_or(1, |last| last.seq + 1);
        let commit = plan_commit(&items, seq, run_date, now, &config.billing, &config.layout)?;
        let export = match commit {
            None => {
                tracing::info!("nothing to send: no export and no file");
                None
            }
            Some(commit) => {
                store.commit_export(&commit).await?;
                fail_point!("export-after-commit", |_| Err(crate::error::interrupted(
                    "export-after-commit"
                )));
                for (name, bytes) in render_export(store, &commit.export, config).await? {
                    let path = write_file_once(&config.exports_dir, &name, &bytes)?;
                    tracing::info!(file = %path.display(), "wrote");
                    fail_point!("export-after-file", |_| Err(crate::error::interrupted(
                        "export-after-file"
                    )));
                }
                Some(commit.export)
            }
        };
        Ok(ExportOutcome {
            export,
            files_restored,
            charges: decisions.charges,
            reversals: decisions.reversals,
            nothing_to_send: decisions.nothing_to_send,
            problems,
        })
    })
    .await
}
