#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Shared by the Direction 1 end-to-end tests: the simulated Alma serving the scenario of
//! `fixtures/scenarios/direction1`, the real embedded store, and a Bursar
//! drop folder (local here; over the real SFTP server in one test). Every
//! test checks the exact files the Bursar receives and what the store
//! holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alma_analytics::{Analytics, ReportColumns};
use alma_api::{AlmaClient, AlmaConfig, ApiKey, RetryPolicy};
use alma_sim::SimulatedAlma;
use chrono::{DateTime, NaiveDateTime, Utc};
use fine_store::{FineStore, MongoConfig, MongoStore, SqliteStore, StoreDump};
use sftp_transport::{IfMissing, LocalDir};
use sync_core::records::{FineId, Job};
use sync_core::rules::payments::DeskPaymentPolicy;
use sync_stages::StageError;
use sync_stages::export::{ExportConfig, run_export};
use sync_stages::export_plan::BillingRules;
use sync_stages::import::{ImportConfig, ReportPaths, SinceMode, run_import};
use sync_stages::import_plan::ImportSettings;
use sync_stages::payments::{PaymentsConfig, PaymentsOutcome, run_payments};
use sync_stages::send::{SendTargets, run_send};

pub const FINES: &str = "/shared/Example University/Reports/Bursar/All Fines";
pub const TRANSACTIONS: &str = "/shared/Example University/Reports/Bursar/All Transactions";
pub const BALANCES: &str = "/shared/Example University/Reports/Bursar/All User Balances";

pub fn scenario_day(day: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/scenarios/direction1")
        .join(day)
}

pub fn at(text: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .unwrap()
        .and_utc()
}

/// One line of the spec's 97-character layout, written from SPEC 5.5's
/// table: widths 11, 12, 10 (right), 9, 9, 5, 3, 31, joined by a space.
#[allow(clippy::too_many_arguments)]
pub fn bursar_line(
    patron: &str,
    account: &str,
    amount: &str,
    due: &str,
    billed: &str,
    term: &str,
    flag: &str,
    reference: &str,
) -> String {
    let line = format!(
        "{patron:<11} {account:<12} {amount:>10} {due:<9} {billed:<9} {term:<5} {flag:<3} {reference:<31}"
    );
    assert_eq!(line.len(), 97);
    line + "\n"
}

pub fn day1_charges() -> String {
    [
        bursar_line(
            "1000001",
            "531000000002",
            "15.00",
            "01252025",
            "12102024",
            "2247",
            "",
            "2200000001",
        ),
        bursar_line(
            "1000002",
            "531000000001",
            "65.00",
            "01252025",
            "12102024",
            "2247",
            "",
            "2200000002",
        ),
        bursar_line(
            "1000002",
            "531000000002",
            "10.00",
            "01252025",
            "12102024",
            "2247",
            "",
            "2200000003",
        ),
        bursar_line(
            "1000003",
            "531000000002",
            "20.00",
            "01252025",
            "12102024",
            "2247",
            "",
            "2200000004",
        ),
        bursar_line(
            "1000005",
            "531000000002",
            "8.00",
            "01252025",
            "12102024",
            "2247",
            "",
            "2200000006",
        ),
        bursar_line(
            "1000006",
            "531000000005",
            "12.00",
            "01252025",
            "12102024",
            "2247",
            "",
            "2200000007",
        ),
    ]
    .concat()
}

pub fn day2_reversals(desk_reversal: bool) -> String {
    let mut lines = vec![
        bursar_line(
            "1000002",
            "531000000001",
            "65.00",
            "",
            "",
            "2247",
            "Y",
            "2200000002",
        ),
        bursar_line(
            "1000002",
            "531000000002",
            "5.00",
            "",
            "",
            "2247",
            "Y",
            "2200000003",
        ),
        bursar_line(
            "1000003",
            "531000000002",
            "20.00",
            "",
            "",
            "2247",
            "Y",
            "2200000004",
        ),
    ];
    if desk_reversal {
        lines.push(bursar_line(
            "1000005",
            "531000000002",
            "8.00",
            "",
            "",
            "2247",
            "Y",
            "2200000006",
        ));
    }
    lines.concat()
}

pub struct Rig {
    pub sim: SimulatedAlma,
    pub store: Box<dyn FineStore>,
    pub _root: tempfile::TempDir,
    pub root: PathBuf,
    pub import: ImportConfig,
    pub export: ExportConfig,
    pub analytics: Analytics,
}

impl Rig {
    pub async fn new(desk: DeskPaymentPolicy) -> Rig {
        Rig::on(desk, None).await
    }

    /// A rig on MongoDB (a fresh database at `uri`) instead of SQLite.
    pub async fn on_mongodb(desk: DeskPaymentPolicy, uri: String) -> Rig {
        Rig::on(desk, Some(uri)).await
    }

    async fn on(desk: DeskPaymentPolicy, mongodb_uri: Option<String>) -> Rig {
        let sim = SimulatedAlma::start().await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let store: Box<dyn FineStore> = match mongodb_uri {
            None => Box::new(SqliteStore::open(root.join("state.db")).unwrap()),
            Some(uri) => {
                static NEXT: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let database = format!("direction_one_{}_{n}", std::process::id());
                Box::new(
                    MongoStore::connect(&MongoConfig { uri, database })
                        .await
                        .unwrap(),
                )
            }
        };
        let mut alma = AlmaConfig::new(sim.uri(), ApiKey::new("l8xx-REHEARSAL"));
        alma.requests_per_second = 1000;
        alma.timeout = Duration::from_secs(2);
        alma.retry = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            still_preparing_delay: Duration::from_millis(1),
            still_preparing_attempts: 2,
            per_second_429_delay: Duration::from_millis(1),
            per_second_429_attempts: 2,
        };
        let analytics = Analytics::new(AlmaClient::new(alma).unwrap());
        let import = ImportConfig {
            paths: ReportPaths {
                fines: FINES.into(),
                transactions: TRANSACTIONS.into(),
                balances: BALANCES.into(),
            },
            columns: ReportColumns::default(),
            since: SinceMode::default(),
            settings: ImportSettings {
                ignored_fines: [FineId::new("2200000008")].into(),
                desk_payments: desk,
                ..ImportSettings::default()
            },
        };
        let export = ExportConfig {
            layout: bursar_format::Layout::default(),
            billing: BillingRules::default(),
            exports_dir: root.join("exports"),
        };
        Rig {
            sim,
            store,
            _root: dir,
            root,
            import,
            export,
            analytics,
        }
    }

    pub fn serve(&self, day: &str) {
        let dir = scenario_day(day);
        // Small pages so every report spans several.
        self.sim
            .serve_report_csv(FINES, &dir.join("fines.csv"), 4)
            .unwrap();
        self.sim
            .serve_report_csv(TRANSACTIONS, &dir.join("transactions.csv"), 3)
            .unwrap();
        self.sim
            .serve_report_csv(BALANCES, &dir.join("balances.csv"), 5)
            .unwrap();
    }

    pub fn folder(&self, name: &str) -> LocalDir {
        LocalDir::open(self.root.join(name), IfMissing::Create).unwrap()
    }

    pub async fn import(
        &self,
        now: DateTime<Utc>,
    ) -> Result<sync_stages::import::ImportOutcome, StageError> {
        run_import(self.store.as_ref(), &self.analytics, &self.import, now)
            .await
            .map(|(_, outcome)| outcome)
    }

    pub async fn export(
        &self,
        now: DateTime<Utc>,
    ) -> Result<sync_stages::export::ExportOutcome, StageError> {
        run_export(self.store.as_ref(), &self.export, now.date_naive(), now)
            .await
            .map(|(_, outcome)| outcome)
    }

    pub async fn send(
        &self,
        now: DateTime<Utc>,
    ) -> Result<sync_stages::send::SendOutcome, StageError> {
        let bursar = self.folder("bursar");
        let archive = self.folder("remote-archive");
        let targets = SendTargets {
            bursar: &bursar,
            remote_archive: Some(&archive),
            local_archive: Some(self.root.join("archive")),
        };
        run_send(self.store.as_ref(), &self.export, &targets, now)
            .await
            .map(|(_, outcome)| outcome)
    }

    pub async fn day(&self, day: &str, now: DateTime<Utc>) {
        self.serve(day);
        self.import(now).await.unwrap();
        self.export(now).await.unwrap();
        self.send(now).await.unwrap();
    }

    /// The files in a folder, by name.
    pub fn files(&self, folder: &str) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = std::fs::read_dir(self.root.join(folder))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap())
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read_to_string(e.path()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// The store without the jobs (their times and counts differ between
    /// an interrupted and a clean run by design).
    pub async fn records(&self) -> StoreDump {
        StoreDump {
            jobs: Vec::new(),
            ..self.store.dump().await.unwrap()
        }
    }
}

pub const DAY1: &str = "2024-12-10T12:00:00";
pub const DAY2: &str = "2025-01-06T12:00:00";

/// The SFTP test server's settings from `.test-services/env`, a fresh
/// folder per call; None (skipped loudly) without them, a failure in CI.
pub fn sftp_config() -> Option<sftp_transport::SftpConfig> {
    let var = |name: &str| std::env::var(name).ok();
    let (Some(host), Some(port), Some(user), Some(key), Some(known_hosts), Some(root)) = (
        var("ABS_TEST_SFTP_HOST"),
        var("ABS_TEST_SFTP_PORT"),
        var("ABS_TEST_SFTP_USER"),
        var("ABS_TEST_SFTP_KEY"),
        var("ABS_TEST_SFTP_KNOWN_HOSTS"),
        var("ABS_TEST_SFTP_ROOT"),
    ) else {
        assert!(
            var("CI").as_deref() != Some("true"),
            "CI=true but the SFTP test server is not configured (scripts/test-services.sh start)"
        );
        eprintln!(
            "SKIPPED: SFTP test server not running (run scripts/test-services.sh start and source .test-services/env)"
        );
        return None;
    };
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let folder = format!("{root}/direction-one-{}-{n}", std::process::id());
    let mut config = sftp_transport::SftpConfig::new(
        host,
        user,
        sftp_transport::SftpAuth::PrivateKey {
            path: key.into(),
            passphrase: None,
        },
        PathBuf::from(known_hosts),
        folder.clone(),
    );
    config.port = port.parse().unwrap();
    config.connect_timeout = Duration::from_secs(10);
    // The test's own folder, created once.
    let mut setup = config.clone();
    setup.folder = root;
    let parent = sftp_transport::SftpDir::connect(&setup).unwrap();
    parent.open_folder(&folder, IfMissing::Create).unwrap();
    Some(config)
}

/// `MONGODB_URI` from `.test-services/env`; None (skipped loudly) without
/// it, a failure under CI=true.
pub fn mongodb_uri() -> Option<String> {
    if let Ok(uri) = std::env::var("MONGODB_URI") {
        return Some(uri);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but MONGODB_URI is not set (scripts/test-services.sh start)"
    );
    eprintln!(
        "SKIPPED: MongoDB tests: set MONGODB_URI (scripts/test-services.sh start && source .test-services/env)"
    );
    None
}

/// A small tmpfs mounted at `dir`, unmounted when dropped: a disk a test
/// can fill. Mounting needs root: without it the test is skipped loudly
/// (None), and fails under CI=true.
pub struct SmallDisk {
    pub dir: PathBuf,
}

impl SmallDisk {
    /// `size` as tmpfs takes it, e.g. `16k`.
    pub fn mount(dir: PathBuf, size: &str) -> Option<SmallDisk> {
        if !is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run as root to mount a tmpfs"
            );
            eprintln!("SKIPPED: a full-disk test mounts a tmpfs and needs root");
            return None;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(mounted.success(), "mount tmpfs on {}", dir.display());
        Some(SmallDisk { dir })
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Takes every free page of the disk.
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.filler()).unwrap();
        while file.write_all(&[0u8; 4096]).is_ok() {}
    }

    /// Gives the pages back.
    pub fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    /// Lazily: a file still open on the disk (a store not yet closed when
    /// a test panics) must not leave it mounted.
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.dir)
            .status();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

// ------------------------------------------------------------ Direction 2

pub const PAYMENTS_PREFIX: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE";
/// When Direction 2 runs in these tests: after day 1 was billed.
pub const PAY_DAY: &str = "2024-12-13T07:00:00";
pub const PAYMENTS_HEADER: &str =
    "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n";

impl Rig {
    /// Gives the simulated Alma a fee for every open fine the store holds
    /// with a Bursar account line, at its remaining amount: Alma as it
    /// stands after day 1.
    pub async fn open_fees(&self) {
        let dump = self.store.dump().await.unwrap();
        for fine in dump.fines {
            let billed = dump
                .account_lines
                .iter()
                .any(|line| line.reference == fine.id);
            if billed && !fine.closed && fine.remaining_amount.is_positive() {
                self.sim.put_fee(alma_sim::SimFee::active(
                    fine.id.as_str(),
                    fine.patron_id.as_str(),
                    "OVERDUEFINE",
                    fine.remaining_amount,
                ));
            }
        }
    }

    /// Puts a payments file into the payments drop folder. `order` sets
    /// its modification time: the file with the highest is the newest.
    pub fn drop_payments(&self, name: &str, content: &[u8], order: u64) {
        let dir = self.root.join("payments-drop");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let time = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_733_000_000 + order);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    pub fn payments_config(&self, now: DateTime<Utc>) -> PaymentsConfig {
        PaymentsConfig::new(
            PAYMENTS_PREFIX,
            self.root.join("payments-archive"),
            now.date_naive(),
        )
    }

    /// Direction 2 on the newest file of the payments drop folder.
    pub async fn pay(&self, now: DateTime<Utc>) -> Result<(Job, PaymentsOutcome), StageError> {
        self.pay_with(&self.payments_config(now), now).await
    }

    pub async fn pay_with(
        &self,
        config: &PaymentsConfig,
        now: DateTime<Utc>,
    ) -> Result<(Job, PaymentsOutcome), StageError> {
        let drop = self.folder("payments-drop");
        run_payments(
            self.store.as_ref(),
            self.analytics.client(),
            &drop,
            config,
            now,
        )
        .await
    }

    /// Every payment the simulated Alma received, in a fixed order (rows
    /// are posted concurrently).
    pub fn alma_payments(&self) -> Vec<alma_sim::SimPayment> {
        let mut payments = self.sim.payments();
        payments.sort_by(|a, b| {
            (&a.fee_id, &a.external_transaction_id).cmp(&(&b.fee_id, &b.external_transaction_id))
        });
        payments
    }
}
