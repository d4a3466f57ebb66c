//! The sync side of a benchmark: the store, the Alma client and the stage
//! configurations, wired as the operator's tool wires them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alma_analytics::{Analytics, ReportColumns};
use alma_api::{AlmaClient, AlmaConfig, ApiKey, RetryPolicy};
use fine_store::{FineStore, MongoConfig, MongoStore, SqliteStore, StoreDump};
use sync_stages::export::ExportConfig;
use sync_stages::export_plan::BillingRules;
use sync_stages::import::{ImportConfig, SinceMode};
use sync_stages::import_plan::ImportSettings;

use crate::error::BenchError;
use crate::serve::report_paths;

/// Which store a benchmark runs on.
#[derive(Clone, Debug)]
pub enum StoreChoice {
    Sqlite,
    Mongo { uri: String },
}

pub struct OpenStore {
    pub store: Box<dyn FineStore>,
    pub description: String,
    /// The MongoDB database to drop at the end, if any.
    mongo: Option<(String, String)>,
}

impl OpenStore {
    pub async fn open(
        choice: &StoreChoice,
        dir: &Path,
        tag: &str,
    ) -> Result<OpenStore, BenchError> {
        match choice {
            StoreChoice::Sqlite => {
                let path = dir.join("state.db");
                Ok(OpenStore {
                    store: Box::new(SqliteStore::open(&path)?),
                    description: format!("sqlite:{}", path.display()),
                    mongo: None,
                })
            }
            StoreChoice::Mongo { uri } => {
                let database = format!("abs_bench_{tag}_{}", std::process::id());
                let store = MongoStore::connect(&MongoConfig {
                    uri: uri.clone(),
                    database: database.clone(),
                })
                .await?;
                Ok(OpenStore {
                    store: Box::new(store),
                    description: format!("mongodb database {database}"),
                    mongo: Some((uri.clone(), database)),
                })
            }
        }
    }

    /// Drops the benchmark's MongoDB database (nothing for SQLite: its
    /// folder is temporary).
    pub async fn clean_up(self) -> Result<(), BenchError> {
        drop(self.store);
        if let Some((uri, database)) = self.mongo {
            let client = mongodb::Client::with_uri_str(&uri)
                .await
                .map_err(|e| BenchError::Mongo(e.to_string()))?;
            client
                .database(&database)
                .drop()
                .await
                .map_err(|e| BenchError::Mongo(e.to_string()))?;
        }
        Ok(())
    }
}

/// An Alma client for the local mock. `requests_per_second` is the
/// client's limit; retries are quick (the mock does not fail).
pub fn alma_client(uri: &str, requests_per_second: u32) -> Result<AlmaClient, BenchError> {
    let mut config = AlmaConfig::new(uri, ApiKey::new("l8xx-BENCHMARK"));
    config.requests_per_second = requests_per_second;
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        still_preparing_delay: Duration::from_millis(10),
        still_preparing_attempts: 3,
        per_second_429_delay: Duration::from_millis(10),
        per_second_429_attempts: 3,
    };
    Ok(AlmaClient::new(config)?)
}

pub fn analytics(uri: &str, requests_per_second: u32) -> Result<Analytics, BenchError> {
    Ok(Analytics::new(alma_client(uri, requests_per_second)?))
}

pub fn import_config(day: u8) -> ImportConfig {
    ImportConfig {
        paths: report_paths(day),
        columns: ReportColumns::default(),
        since: SinceMode::default(),
        settings: ImportSettings::default(),
    }
}

pub fn export_config(exports_dir: PathBuf) -> ExportConfig {
    ExportConfig {
        layout: bursar_format::Layout::default(),
        billing: BillingRules::default(),
        exports_dir,
    }
}

/// The store's records without the jobs (their times and counts differ
/// between an interrupted and a clean run by design).
pub async fn records(store: &dyn FineStore) -> Result<StoreDump, BenchError> {
    Ok(StoreDump {
        jobs: Vec::new(),
        ..store.dump().await?
    })
}
