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
use crate::export_plan::{BillingRules, DecisionPlan, export_lines, plan_commit, plan_decisions};
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

/// How the temporary file of a write in progress is named: hidden, never
/// a file name an export uses, and swept by the next export if a run died
/// before moving it into place.
const PARTIAL_PREFIX: &str = ".abs-partial-";

/// Writes `bytes` as `dir/name` atomically; an identical file already
/// there is fine, a different one is an error naming it.
pub fn write_file_once(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, StageError> {
    let folder = LocalDir::open(dir, IfMissing::Create)?;
    let mut staged = tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| StageError::io("creating a temporary file in", dir, e))?;
    staged
        .write_all(bytes)
        .and_then(|()| staged.as_file().sync_all())
        .map_err(|e| StageError::io("writing a temporary file in", dir, e))?;
    folder.upload_atomic(staged.path(), name)?;
    Ok(dir.join(name))
}

/// Removes the temporary files of writes a killed run left in `dir`; they
/// were never moved into place, so nothing refers to them. Returns how
/// many went.
pub fn sweep_partial_files(dir: &Path) -> Result<u64, StageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StageError::io("listing", dir, e)),
    };
    let mut swept = 0;
    for entry in entries {
        let entry = entry.map_err(|e| StageError::io("listing", dir, e))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(PARTIAL_PREFIX)
        {
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(|e| StageError::io("removing the unfinished file", &path, e))?;
            tracing::info!(file = %path.display(), "removed the unfinished file of a run that stopped");
            swept += 1;
        }
    }
    Ok(swept)
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

/// Fines decided per committed change set: bounds the ledgers held in
/// memory (a first export decides every fine of the institution).
const DECISION_SLICE: usize = 20_000;

/// Step 1 of the export: decides every fine with pending Alma
/// transactions, a slice at a time, each slice committed on its own.
/// Returns the counts and quarantined fines of all slices.
async fn decide_pending_fines(
    store: &dyn FineStore,
    now: DateTime<Utc>,
) -> Result<DecisionPlan, StageError> {
    let pending = store.fines_with_pending_alma().await?;
    let mut decided = DecisionPlan::default();
    for slice in pending.chunks(DECISION_SLICE) {
        let ledgers = store.ledgers(slice).await?;
        let mut plan = plan_decisions(&ledgers, now);
        drop(ledgers);
        store.apply(std::mem::take(&mut plan.changes)).await?;
        decided.charges += plan.charges;
        decided.reversals += plan.reversals;
        decided.nothing_to_send += plan.nothing_to_send;
        decided.quarantined.append(&mut plan.quarantined);
    }
    Ok(decided)
}

/// Runs the export stage for `run_date` (the billing date of its charges).
pub async fn run_export(
    store: &dyn FineStore,
    config: &ExportConfig,
    run_date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(Job, ExportOutcome), StageError> {
    run_as_job(store, JobKind::BursExport, now, |_job| async move {
        sweep_partial_files(&config.exports_dir)?;
        let files_restored = restore_unsent_files(store, config).await?;

        let decisions = decide_pending_fines(store, now).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_removes_only_unfinished_writes() {
        let dir = tempfile::tempdir().unwrap();
        let partial = tempfile::Builder::new()
            .prefix(PARTIAL_PREFIX)
            .tempfile_in(dir.path())
            .unwrap()
            .keep()
            .unwrap()
            .1;
        for name in ["TRAN.FINES.1.1", ".hidden", ".tmpABC"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(sweep_partial_files(dir.path()).unwrap(), 1);
        assert!(!partial.exists());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![".hidden", ".tmpABC", "TRAN.FINES.1.1"]);
        assert_eq!(sweep_partial_files(&dir.path().join("missing")).unwrap(), 0);
    }
}
