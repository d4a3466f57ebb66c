#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store going away in the middle of a stage: the import, the export
//! and the payments run each lose their store at a named step (a fail
//! point's callback takes it away exactly there), fail with the store's
//! own "unavailable" error, and once the store is back a re-run ends the
//! day exactly as a clean run does: same files, same records, every
//! charge billed once and every payment posted to Alma once.
//!
//! MongoDB goes away as a server does: a SecantusDB of the test's own,
//! killed (SIGKILL) and started again on the same data folder. The
//! embedded SQLite store cannot go away like a server; what takes it
//! away on a real machine is the disk under its file filling up (logs,
//! backups and exports often share it), so here its file sits on a small
//! tmpfs that is filled mid-stage, then emptied.
//!
//! In a test binary of its own because fail points are process-wide; the
//! scenario lock runs its tests one at a time.

mod common;

use std::net::{TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alma_sim::SimPayment;
use bursar_format::{PaymentKey, external_transaction_id};
use chrono::NaiveDate;
use common::*;
use fine_store::{SqliteStore, StoreDump, StoreError};
use sync_core::Money;
use sync_core::records::{FineId, JobKind, JobStatus, PatronId, PaymentOutcome, PaymentRecord};
use sync_core::rules::payments::DeskPaymentPolicy;
use sync_stages::StageError;

// ------------------------------------------------------------- outages

/// A way for the store to go away and come back.
trait Outage: Send + Sync {
    /// The store goes away (called from the fail point).
    fn begin(&self);
    /// It comes back.
    fn end(&self);
}

/// `secantusd-py` of the test services: `ABS_TEST_SECANTUSD`, else the
/// venv that scripts/test-services.sh keeps next to the sshd
/// configuration it wrote. None (skipped loudly) without it, a failure
/// under CI=true.
fn secantusd() -> Option<PathBuf> {
    let found = std::env::var_os("ABS_TEST_SECANTUSD")
        .map(PathBuf::from)
        .or_else(|| {
            let sshd_config = PathBuf::from(std::env::var_os("ABS_TEST_SSHD_CONFIG")?);
            let state = sshd_config.parent()?.parent()?;
            Some(state.join("venv/bin/secantusd-py"))
        })
        .filter(|path| path.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but secantusd-py is not found (scripts/test-services.sh install, and source .test-services/env)"
        );
        eprintln!(
            "SKIPPED: secantusd-py not found: run scripts/test-services.sh install and source .test-services/env"
        );
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A SecantusDB server of the test's own, on a free port, its data in a
/// folder that outlives a kill. Every commit is synced to disk, as a
/// MongoDB server honouring the store's journaled write concern does, so
/// what a write acknowledged survives the kill. Killed by its pid when
/// dropped.
struct PrivateMongo {
    program: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    standalone: bool,
    child: Option<Child>,
    /// How many times it was started.
    starts: usize,
}

impl PrivateMongo {
    /// A replica-set primary of one node (transactions), or a standalone
    /// server (no transactions: the store's ordered fallback).
    fn start(standalone: bool) -> Option<PrivateMongo> {
        let mut server = PrivateMongo {
            program: secantusd()?,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            standalone,
            child: None,
            starts: 0,
        };
        server.launch();
        Some(server)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn launch(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut command = Command::new(&self.program);
        command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.dir.path().join("data"))
            .args(["--cache-size", "64M", "--log-level", "WARNING"])
            .arg("--sync-on-commit")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if self.standalone {
            command.arg("--standalone");
        }
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        // The port opens when the server is ready.
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "secantusd-py exited ({status}); see {}",
                    self.log().display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "secantusd-py did not open port {}; see {}",
                self.port,
                self.log().display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        self.starts += 1;
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Short server-selection and connect timeouts, so an operation on a
    /// dead server fails in seconds rather than the driver's 30.
    fn uri(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=2000&connectTimeoutMS=2000",
            self.port
        )
    }
}

impl Drop for PrivateMongo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The MongoDB server dies, and is started again.
struct ServerKilled(Mutex<PrivateMongo>);

impl Outage for ServerKilled {
    fn begin(&self) {
        self.0.lock().unwrap().kill();
    }

    fn end(&self) {
        self.0.lock().unwrap().launch();
    }
}

/// The disk under the SQLite file fills up, and is freed.
struct DiskFull(SmallDisk);

impl Outage for DiskFull {
    fn begin(&self) {
        self.0.fill();
    }

    fn end(&self) {
        self.0.free();
    }
}

// --------------------------------------------------------------- the day

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Import,
    Export,
    Payments,
}

const PAYMENTS_FILE: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE_20241213.csv";

fn payments_csv() -> String {
    format!(
        "{PAYMENTS_HEADER}\
         1000001,2024-12-12,2200000001,15.00,15.00,LIBFINE,Overdue fine\n\
         1000002,2024-12-12,2200000002,65.00,30.00,LIBFINE,Lost item replacement fee\n\
         1000003,2024-12-12,2200000004,20.00,20.00,LIBFINE,Overdue fine\n"
    )
}

/// The payments run, one row at a time, so the row the store goes away
/// under is the file's first.
async fn pay(rig: &Rig) -> Result<(), StageError> {
    let mut config = rig.payments_config(at(PAY_DAY));
    config.concurrency = NonZeroUsize::new(1);
    rig.pay_with(&config, at(PAY_DAY)).await.map(|_| ())
}

async fn run(rig: &Rig, stage: Stage) -> Result<(), StageError> {
    match stage {
        Stage::Import => rig.import(at(DAY1)).await.map(|_| ()),
        Stage::Export => rig.export(at(DAY1)).await.map(|_| ()),
        Stage::Payments => pay(rig).await,
    }
}

/// Runs the day's stages from `from` on: day 1 of Direction 1 (the send
/// after the export), then the Bursar's payments against the fees day 1
/// left in Alma.
async fn run_from(rig: &Rig, from: Stage) {
    rig.serve("day1");
    if from <= Stage::Import {
        rig.import(at(DAY1)).await.unwrap();
    }
    if from <= Stage::Export {
        rig.export(at(DAY1)).await.unwrap();
        rig.send(at(DAY1)).await.unwrap();
        rig.open_fees().await;
        rig.drop_payments(PAYMENTS_FILE, payments_csv().as_bytes(), 1);
    }
    pay(rig).await.unwrap();
}

/// Everything the day leaves, to compare with a clean run.
#[derive(Debug, PartialEq, Eq)]
struct DayEnd {
    records: StoreDump,
    bursar: Vec<(String, String)>,
    exports: Vec<(String, String)>,
    archive: Vec<(String, String)>,
    alma_payments: Vec<SimPayment>,
}

async fn day_end(rig: &Rig) -> DayEnd {
    DayEnd {
        records: rig.records().await,
        bursar: rig.files("bursar"),
        exports: rig.files("exports"),
        archive: rig.files("archive"),
        alma_payments: rig.alma_payments(),
    }
}

async fn clean_day(rig: &Rig) -> DayEnd {
    run_from(rig, Stage::Import).await;
    let end = day_end(rig).await;
    assert_eq!(end.alma_payments.len(), 3, "{end:#?}");
    end
}

/// The record of the file's first row, left `Posting` by a run that lost
/// its store between Alma's answer and the `Paid` write.
fn first_row_posting() -> PaymentRecord {
    let key = PaymentKey {
        emplid: PatronId::new("1000001"),
        date_paid: NaiveDate::from_ymd_opt(2024, 12, 12).unwrap(),
        reference: FineId::new("2200000001"),
        charge_amount: Money::from_cents(1500),
        paid_amount: Money::from_cents(1500),
        n: 1,
    };
    PaymentRecord {
        key: key.key_string(),
        fine_id: Some(FineId::new("2200000001")),
        patron_id: PatronId::new("1000001"),
        paid_amount: Money::from_cents(1500),
        outcome: PaymentOutcome::Posting,
        balance_read: Some(Money::from_cents(1500)),
        amount_posted: Some(Money::from_cents(1500)),
        external_transaction_id: external_transaction_id(&key),
        first_seen_at: at(PAY_DAY),
        updated_at: at(PAY_DAY),
    }
}

fn job_kind(stage: Stage) -> JobKind {
    match stage {
        Stage::Import => JobKind::AlmaImport,
        Stage::Export => JobKind::BursExport,
        Stage::Payments => JobKind::BursarPayments,
    }
}

/// The day on `rig` with the store taken away by `outage` at fail point
/// `point` of `stage`: the stage fails with the store's unavailable error
/// during `operation`, naming the store and saying what to check; the
/// failed run wrote nothing a re-run repeats; once the store is back, the
/// re-run of the day from that stage ends exactly as `clean`.
async fn the_store_goes_away(
    rig: Rig,
    clean: DayEnd,
    outage: Arc<dyn Outage>,
    stage: Stage,
    point: &str,
    operation: &str,
    advice: &str,
) {
    // The stages before `stage`, undisturbed.
    rig.serve("day1");
    if stage > Stage::Import {
        rig.import(at(DAY1)).await.unwrap();
    }
    if stage > Stage::Export {
        rig.export(at(DAY1)).await.unwrap();
        rig.send(at(DAY1)).await.unwrap();
        rig.open_fees().await;
        rig.drop_payments(PAYMENTS_FILE, payments_csv().as_bytes(), 1);
    }
    let before = rig.records().await;

    let fired = Arc::new(AtomicBool::new(false));
    {
        let (outage, fired) = (outage.clone(), fired.clone());
        fail::cfg_callback(point, move || {
            if !fired.swap(true, Ordering::SeqCst) {
                outage.begin();
            }
        })
        .unwrap();
    }
    let result = run(&rig, stage).await;
    fail::remove(point);
    assert!(fired.load(Ordering::SeqCst), "the store never went away");

    let Err(error) = result else {
        panic!("{stage:?} succeeded without its store");
    };
    let store = rig.store.describe();
    assert!(
        matches!(
            &error,
            StageError::Store(StoreError::Unavailable { store: s, operation: o, .. })
                if *s == store && *o == operation
        ),
        "{error:?}"
    );
    // What the operator reads.
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("store {store} unavailable during {operation}: ")),
        "{text}"
    );
    assert!(text.ends_with(&format!("; {advice}")), "{text}");

    outage.end();

    // What the failed run left: its job unfinished (the store was gone
    // when it ended), and no step half done.
    let jobs = rig.store.dump().await.unwrap().jobs;
    let last = jobs.last().unwrap();
    assert_eq!(
        (last.kind, last.status),
        (job_kind(stage), JobStatus::InProgress)
    );
    match stage {
        Stage::Import => {
            assert_eq!(before, StoreDump::default());
            assert_eq!(rig.records().await, before, "the import wrote nothing");
        }
        Stage::Export => {
            assert_eq!(rig.files("exports"), [], "no file was written");
            assert_eq!(rig.files("bursar"), []);
        }
        Stage::Payments => {
            // Alma took the first row's payment; its record stayed
            // Posting, which the re-run settles instead of posting again.
            assert_eq!(rig.alma_payments(), clean.alma_payments[..1]);
            assert_eq!(
                rig.records().await,
                StoreDump {
                    payments: vec![first_row_posting()],
                    ..before
                }
            );
        }
    }

    run_from(&rig, stage).await;
    assert_eq!(day_end(&rig).await, clean);
}

// ------------------------------------------------------------- MongoDB

const MONGODB_ADVICE: &str = "check that the database server is running and reachable and that the settings \
     `store.uri` and `store.database` point at it, then run again";

/// A clean day and a server to lose, on the same kind of server.
async fn on_mongodb(standalone: bool) -> Option<(DayEnd, Rig, Arc<ServerKilled>)> {
    let server = PrivateMongo::start(standalone)?;
    let clean = Rig::on_mongodb(DeskPaymentPolicy::Report, server.uri()).await;
    let clean = clean_day(&clean).await;
    let rig = Rig::on_mongodb(DeskPaymentPolicy::Report, server.uri()).await;
    Some((clean, rig, Arc::new(ServerKilled(Mutex::new(server)))))
}

/// On a standalone server the import's change set is written batch by
/// batch without a transaction, so the first write fails at once. (On a
/// replica set it is one transaction, retried while the server is away:
/// see the test after this one.)
#[tokio::test]
async fn mongodb_killed_before_the_import_writes() {
    let scenario = fail::FailScenario::setup();
    let Some((clean, rig, server)) = on_mongodb(true).await else {
        return;
    };
    the_store_goes_away(
        rig,
        clean,
        server,
        Stage::Import,
        "import-before-apply",
        "apply a change set",
        MONGODB_ADVICE,
    )
    .await;
    scenario.teardown();
}

/// On a replica set the import's change set is one transaction, retried
/// while it fails with a transient error (a server that went away
/// included) for up to `TRANSIENT_RETRY_FOR`: a server back within that
/// time costs the import nothing, and the day ends as a clean one.
#[tokio::test]
async fn mongodb_back_within_the_retry_window_costs_the_import_nothing() {
    let scenario = fail::FailScenario::setup();
    let Some((clean, rig, server)) = on_mongodb(false).await else {
        return;
    };
    let restarter = Arc::new(Mutex::new(None));
    {
        let (server, restarter) = (server.clone(), restarter.clone());
        let hits = AtomicUsize::new(0);
        fail::cfg_callback("import-before-apply", move || {
            if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                server.begin();
                let server = server.clone();
                // Back while the transaction is being retried.
                *restarter.lock().unwrap() = Some(std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(1));
                    server.end();
                }));
            }
        })
        .unwrap();
    }
    rig.serve("day1");
    let imported = rig.import(at(DAY1)).await;
    fail::remove("import-before-apply");
    let restarter = restarter.lock().unwrap().take();
    restarter.expect("the server was killed").join().unwrap();
    imported.unwrap();
    assert_eq!(server.0.lock().unwrap().starts, 2);

    run_from(&rig, Stage::Export).await;
    assert_eq!(day_end(&rig).await, clean);
    scenario.teardown();
}

/// Killed after the export was committed, before its file was written:
/// the re-run writes the file of that export, and makes no second one.
#[tokio::test]
async fn mongodb_killed_between_the_export_commit_and_its_file() {
    let scenario = fail::FailScenario::setup();
    let Some((clean, rig, server)) = on_mongodb(false).await else {
        return;
    };
    the_store_goes_away(
        rig,
        clean,
        server,
        Stage::Export,
        "export-after-commit",
        "read the items of an export",
        MONGODB_ADVICE,
    )
    .await;
    scenario.teardown();
}

/// Killed after a payment's Posting record was written: Alma takes the
/// payment, the Paid write fails, and the re-run settles the record
/// against Alma instead of paying again.
#[tokio::test]
async fn mongodb_killed_while_a_payment_is_posted() {
    let scenario = fail::FailScenario::setup();
    let Some((clean, rig, server)) = on_mongodb(false).await else {
        return;
    };
    the_store_goes_away(
        rig,
        clean,
        server,
        Stage::Payments,
        "payments-before-post",
        "write a payment record",
        MONGODB_ADVICE,
    )
    .await;
    scenario.teardown();
}

// -------------------------------------------------------------- SQLite

const SQLITE_ADVICE: &str = "check that the disk holding the file has free space, that this account can write \
     the file and its folder, and that no other program holds it locked (setting `store.path`), then run again";

/// A clean day on the embedded store, and a rig whose store file sits on
/// a small disk of its own, mounted in `disk_root`.
async fn on_a_small_disk(disk_root: &Path) -> Option<(DayEnd, Rig, Arc<DiskFull>)> {
    let disk = SmallDisk::mount(disk_root.join("disk"), "8m")?;
    let clean = Rig::new(DeskPaymentPolicy::Report).await;
    let clean = clean_day(&clean).await;
    let mut rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.store = Box::new(SqliteStore::open(disk.dir.join("state.db")).unwrap());
    Some((clean, rig, Arc::new(DiskFull(disk))))
}

#[tokio::test]
async fn sqlite_disk_full_when_the_import_writes() {
    let scenario = fail::FailScenario::setup();
    let disk_root = tempfile::tempdir().unwrap();
    let Some((clean, rig, disk)) = on_a_small_disk(disk_root.path()).await else {
        return;
    };
    the_store_goes_away(
        rig,
        clean,
        disk,
        Stage::Import,
        "import-before-apply",
        "apply a change set",
        SQLITE_ADVICE,
    )
    .await;
    scenario.teardown();
}

/// Full once the export's decisions are stored, so its commit fails: the
/// re-run commits one export and writes its file.
#[tokio::test]
async fn sqlite_disk_full_when_the_export_commits() {
    let scenario = fail::FailScenario::setup();
    let disk_root = tempfile::tempdir().unwrap();
    let Some((clean, rig, disk)) = on_a_small_disk(disk_root.path()).await else {
        return;
    };
    the_store_goes_away(
        rig,
        clean,
        disk,
        Stage::Export,
        "export-after-decisions",
        "commit an export",
        SQLITE_ADVICE,
    )
    .await;
    scenario.teardown();
}

#[tokio::test]
async fn sqlite_disk_full_while_a_payment_is_posted() {
    let scenario = fail::FailScenario::setup();
    let disk_root = tempfile::tempdir().unwrap();
    let Some((clean, rig, disk)) = on_a_small_disk(disk_root.path()).await else {
        return;
    };
    the_store_goes_away(
        rig,
        clean,
        disk,
        Stage::Payments,
        "payments-before-post",
        "write a payment record",
        SQLITE_ADVICE,
    )
    .await;
    scenario.teardown();
}
