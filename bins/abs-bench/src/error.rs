//! Why a benchmark could not run or failed its check.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("child process {what}: {message}")]
    Child { what: String, message: String },
    #[error(transparent)]
    Stage(#[from] sync_stages::StageError),
    #[error(transparent)]
    Store(#[from] fine_store::StoreError),
    #[error(transparent)]
    Alma(#[from] alma_api::AlmaError),
    #[error("MongoDB: {0}")]
    Mongo(String),
    #[error("{0}")]
    Check(String),
}

impl BenchError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
