//! What can stop a command, and the exit status it gives. The messages
//! come from the library crates (they name the record, file or setting);
//! this layer only says which command or stage was running.

use std::error::Error as _;
use std::path::PathBuf;

use crate::cli::{EXIT_FAILED, EXIT_USAGE};
use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("{0}")]
    Usage(String),

    #[error("cannot open the store {store}: {source}")]
    Store {
        store: String,
        #[source]
        source: fine_store::StoreError,
    },

    #[error("reading the store failed: {0}")]
    StoreRead(#[source] fine_store::StoreError),

    #[error(
        "the store {store} has never completed a run: it is new, or not the store {} used before (a changed path or database name, a deleted file); run on it, every open fine would be billed again. If it is new, run once with --new-store; if not, correct [store] in {}, or restore a backup (restore-last, restore-choose)",
        config.display(),
        config.display()
    )]
    UnusedStore { store: String, config: PathBuf },

    #[error(
        "another run is using the store {store}: {holder}; nothing was done. Run again once it has ended (its lock is {}, released when that process ends)",
        lock.display()
    )]
    Busy {
        store: String,
        holder: String,
        lock: PathBuf,
    },

    #[error("stage {stage} failed: {source}")]
    Stage {
        stage: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{0}")]
    Backup(Box<backup::BackupError>),

    #[error("cannot set up the connection to Alma: {0}")]
    Alma(#[source] alma_api::AlmaError),

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the rehearsal could not start: {0}")]
    Rehearsal(String),

    #[error("{0}")]
    NotFound(String),

    #[error("writing the output failed: {0}")]
    Output(#[source] std::io::Error),
}

impl From<backup::BackupError> for AppError {
    fn from(error: backup::BackupError) -> Self {
        AppError::Backup(Box::new(error))
    }
}

impl AppError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AppError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn stage(
        stage: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        AppError::Stage {
            stage,
            source: Box::new(source),
        }
    }

    /// 2 for what a person must fix before anything runs, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) | AppError::Usage(_) | AppError::UnusedStore { .. } => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }

    /// The message and its causes, each cause on its own line unless the
    /// message already says it (most library messages include their
    /// source's text).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = self.source();
        while let Some(error) = cause {
            let line = error.to_string();
            if !text.contains(&line) {
                text.push_str("\n  caused by: ");
                text.push_str(&line);
            }
            cause = error.source();
        }
        text
    }
}
