//! The error of a stage: which step failed, and the library error that
//! says on what record, file or setting.

use std::path::PathBuf;

use alma_analytics::ReportError;
use bursar_format::RenderError;
use fine_store::StoreError;
use sftp_transport::TransportError;

use crate::export_plan::CommitError;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the Alma Analytics reports failed, nothing was imported: {0}")]
    Report(#[from] ReportError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("rendering export {export}: {source}")]
    Render {
        export: u64,
        #[source]
        source: RenderError,
    },
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("{action} {path}: {source}; check the folder setting and its permissions")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A fail point configured by a crash-safety test stopped the stage.
    #[error("stopped at fail point {0}")]
    Interrupted(String),
    #[error(
        "export {export} names file {file} but rendering it gave no lines; the store is inconsistent, look at it with print-last-export"
    )]
    MissingLines { export: u64, file: String },
    /// Direction 2 (SPEC 7.1): the payments folder has no file to read.
    #[error(
        "no payments file whose name starts with {prefix:?} in {location}; nothing was posted. \
         The Bursar's report may not have arrived yet, or the payments prefix setting is wrong"
    )]
    NoPaymentsFile { location: String, prefix: String },
    /// Direction 2 (SPEC 7.1): the newest payments file could not be copied
    /// into the import archive folder.
    #[error("fetching payments file {file} into {archive}: {source}; nothing was posted")]
    PaymentsFetch {
        file: String,
        archive: PathBuf,
        #[source]
        source: Box<TransportError>,
    },
    /// Direction 2 (SPEC 7.2): the payments file cannot be read at all
    /// (row-level problems are reported rows, not this error).
    /// The source names the file (the archived copy) and the line.
    #[error(
        "{source}; nothing was posted. Fix the report or the payment column settings and run again"
    )]
    PaymentsFile {
        archived: PathBuf,
        #[source]
        source: Box<bursar_format::PaymentsError>,
    },
}

impl StageError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StageError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The error a fail point returns: the stage stops as if the process died
/// there, before the next committed step.
pub fn interrupted(point: &str) -> StageError {
    StageError::Interrupted(point.to_string())
}
