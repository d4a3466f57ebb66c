//! What a command works with once the configuration is good: the store,
//! the clock, and (opened only when a stage needs them) Alma and the drop
//! folders.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};

use alma_analytics::Analytics;
use alma_api::AlmaClient;
use alma_sim::SimulatedAlma;
use chrono::{DateTime, NaiveDate, Utc};
use fine_store::{FineStore, MongoStore, SqliteStore};
use sftp_transport::{IfMissing, LocalDir, RemoteDir, SftpDir, TransportError};
use sync_core::records::{JobKind, JobStatus};

use crate::config::{DropConfig, Settings, StoreConfig};
use crate::error::AppError;
use crate::rehearsal;

/// The clock of a run: `now` stamps jobs and sent times, `run_date` is the
/// billing date of the export (the library's local date).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub run_date: NaiveDate,
}

impl Clock {
    /// The real clock, or `--now` (RFC 3339; its date is the run date).
    pub fn from_option(now: Option<&str>) -> Result<Clock, AppError> {
        match now {
            None => {
                let local = chrono::Local::now();
                Ok(Clock {
                    now: local.with_timezone(&Utc),
                    run_date: local.date_naive(),
                })
            }
            Some(text) => {
                let parsed = DateTime::parse_from_rfc3339(text).map_err(|e| {
                    AppError::Usage(format!(
                        "--now {text:?} is not an RFC 3339 time such as 2024-12-09T06:00:00Z: {e}"
                    ))
                })?;
                Ok(Clock {
                    now: parsed.with_timezone(&Utc),
                    run_date: parsed.date_naive(),
                })
            }
        }
    }
}

pub struct Context {
    pub settings: Settings,
    pub store: Box<dyn FineStore>,
    pub clock: Clock,
    /// Started on first use in a rehearsal; kept alive for the run.
    simulated: Option<SimulatedAlma>,
}

impl Context {
    pub async fn open(settings: Settings, clock: Clock) -> Result<Context, AppError> {
        let store = open_store(&settings.store).await?;
        Ok(Context {
            settings,
            store,
            clock,
            simulated: None,
        })
    }

    pub fn store(&self) -> &dyn FineStore {
        self.store.as_ref()
    }

    /// The Analytics client; in a rehearsal, the simulated Alma is started
    /// first and the client pointed at it.
    pub async fn analytics(&mut self) -> Result<Analytics, AppError> {
        Ok(Analytics::new(self.alma_client().await?))
    }

    pub async fn alma_client(&mut self) -> Result<AlmaClient, AppError> {
        let mut config = self.settings.alma.clone();
        if let Some(rehearsal) = &self.settings.rehearsal {
            if self.simulated.is_none() {
                let sim = rehearsal::start_alma(rehearsal, &self.settings).await?;
                tracing::info!(url = %sim.uri(), scenario = %rehearsal.scenario, "rehearsal: simulated Alma started");
                self.simulated = Some(sim);
            }
            if let Some(sim) = &self.simulated {
                config.base_url = sim.uri();
            }
        }
        AlmaClient::new(config).map_err(AppError::Alma)
    }

    /// The simulated Alma, when a rehearsal started one.
    pub fn simulated(&self) -> Option<&SimulatedAlma> {
        self.simulated.as_ref()
    }
}

/// Held while a command runs stages or restores the store: a second such
/// command on the same store (cron and an operator, or two cron jobs) is
/// refused rather than run alongside, where both could post one payment.
/// The operating system releases the lock when the process ends, killed
/// or not, so no stale lock is left to clear.
pub struct RunLock {
    _file: File,
}

/// Takes the run lock of `store` for `command`, or says who holds it.
pub fn lock_runs(
    store: &StoreConfig,
    command: &str,
    now: DateTime<Utc>,
) -> Result<RunLock, AppError> {
    let path = store.lock_file();
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| AppError::io("cannot create the folder of the run lock", parent, e))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| AppError::io("cannot open the run lock", &path, e))?;
    match file.try_lock() {
        Ok(()) => {
            // Who holds it, for the message of a run that is refused.
            let holder = format!(
                "{command} (process {}), started {}\n",
                std::process::id(),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            file.set_len(0)
                .and_then(|()| file.write_all(holder.as_bytes()))
                .map_err(|e| AppError::io("cannot write the run lock", &path, e))?;
            Ok(RunLock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // The holder's line is only for the message.
            let _ = file.read_to_string(&mut holder);
            Err(AppError::Busy {
                store: store.describe(),
                holder: holder.trim().to_string(),
                lock: path,
            })
        }
        Err(TryLockError::Error(e)) => Err(AppError::io("cannot lock", &path, e)),
    }
}

/// What a job left In Progress by a dead run is finished with.
pub const DIED_UNRECORDED: &str = "the run that started this job ended without recording its end (it was killed, or the store went away); whatever it left undone is done by the next run of the stage";

/// Marks failed the jobs that runs which died left In Progress: with the
/// run lock held, no other run is working, so none of them is running.
pub async fn settle_dead_runs(ctx: &Context) -> Result<(), AppError> {
    let stale = ctx
        .store
        .jobs_in_progress()
        .await
        .map_err(AppError::StoreRead)?;
    for mut job in stale {
        tracing::warn!(job = job.seq, kind = ?job.kind, started = %job.started_at, "a job of a run that died is marked failed");
        job.status = JobStatus::Failed;
        job.finished_at = Some(ctx.clock.now.max(job.started_at));
        job.error = Some(DIED_UNRECORDED.to_string());
        ctx.store
            .finish_job(&job)
            .await
            .map_err(AppError::StoreRead)?;
    }
    Ok(())
}

/// Refuses a store that has never completed a stage: it is new, or not
/// the store this configuration used before (a changed path or database,
/// a deleted file). Run on it, the import would take every open fine as
/// new and the export would bill them all again, and payments would be
/// recorded as matching no fine. `--new-store` says it is new.
pub async fn refuse_unused_store(ctx: &Context) -> Result<(), AppError> {
    const EVERY_KIND: [JobKind; 6] = [
        JobKind::AlmaImport,
        JobKind::BursExport,
        JobKind::BursSend,
        JobKind::BursarPayments,
        JobKind::Backup,
        JobKind::Restore,
    ];
    for kind in EVERY_KIND {
        let done = ctx
            .store
            .last_successful_job(kind)
            .await
            .map_err(AppError::StoreRead)?;
        if done.is_some() {
            return Ok(());
        }
    }
    Err(AppError::UnusedStore {
        store: ctx.settings.store.describe(),
        config: ctx.settings.file.clone(),
    })
}

pub async fn open_store(config: &StoreConfig) -> Result<Box<dyn FineStore>, AppError> {
    let store_error = |source| AppError::Store {
        store: config.describe(),
        source,
    };
    match config {
        StoreConfig::Sqlite(path) => {
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| AppError::io("cannot create the store's folder", parent, e))?;
            }
            let store = SqliteStore::open(path).map_err(store_error)?;
            Ok(Box::new(store))
        }
        StoreConfig::Mongo(mongo) => {
            let store = MongoStore::connect(mongo).await.map_err(store_error)?;
            Ok(Box::new(store))
        }
    }
}

/// A drop folder and its archive folder, opened.
pub struct OpenedDrop {
    pub folder: Box<dyn RemoteDir>,
    pub archive: Option<Box<dyn RemoteDir>>,
}

/// Opens a drop folder (which must exist: it belongs to someone else) and
/// its archive folder (created if missing). SFTP connects here.
pub fn open_drop(config: &DropConfig) -> Result<OpenedDrop, TransportError> {
    match config {
        DropConfig::Local { folder, archive } => {
            let opened = LocalDir::open(folder, IfMissing::Fail)?;
            let archive = match archive {
                Some(path) => {
                    Some(Box::new(LocalDir::open(path, IfMissing::Create)?) as Box<dyn RemoteDir>)
                }
                None => None,
            };
            Ok(OpenedDrop {
                folder: Box::new(opened),
                archive,
            })
        }
        DropConfig::Sftp { config, archive } => {
            let opened = SftpDir::connect(config)?;
            let archive =
                match archive {
                    Some(path) => Some(Box::new(opened.open_folder(path, IfMissing::Create)?)
                        as Box<dyn RemoteDir>),
                    None => None,
                };
            Ok(OpenedDrop {
                folder: Box::new(opened),
                archive,
            })
        }
    }
}
