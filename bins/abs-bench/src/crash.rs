//! The randomized crash test.
//!
//! `abs-bench run-scenario` runs a two-day Direction 1 scenario (import,
//! export, send; twice) against a mock Alma in another process, with the
//! embedded store and local Bursar and archive folders in `--dir`; with
//! `--fees`, Direction 2 follows: the Bursar drops a payments CSV for some
//! of the billed fines ([`crate::bursar_payments`]) and the payments stage
//! posts them to the fees mock, another process that is never killed, so
//! what it accepted before a kill is there for the re-run to find. After
//! each stage it records how many stages are done (a small file, written
//! atomically) and on a re-run skips those: what cron does when it runs
//! `today` again after a crash. A kill between a stage's end and that
//! record makes the re-run repeat the stage, which must then change
//! nothing.
//!
//! `abs-bench crash` runs the scenario once uninterrupted, then `--runs`
//! times: start it, SIGKILL it after a random delay (a stage picked at
//! random, a random point within that stage's time in the clean run), run
//! it again to completion, and compare the store (less the
//! jobs), every file the Bursar, the archives and the exports folder
//! hold, and the fees mock's state (balances and the payments accepted on
//! each fee) with the clean run.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use fine_store::{FineStore, SqliteStore, StoreDump};
use sftp_transport::{IfMissing, LocalDir};
use sync_core::records::PaymentOutcome;
use sync_stages::export::run_export;
use sync_stages::import::run_import;
use sync_stages::payments::{PaymentsConfig, run_payments};
use sync_stages::send::{SendTargets, run_send};

use crate::bursar_payments::{FILE_NAME, PREFIX, payments_csv};
use crate::error::BenchError;
use crate::rig::{alma_client, analytics, export_config, import_config, records};
use crate::serve::{MockFees, ServerChild, mock_fees, reset_mock_fees, size_args};
use crate::synth::{Institution, Rng, Size};

const STAGES: [&str; 7] = [
    "import day 1",
    "export day 1",
    "send day 1",
    "import day 2",
    "export day 2",
    "send day 2",
    "payments",
];
/// The index of the payments stage in [`STAGES`].
const PAYMENTS: usize = 6;
const FOLDERS: [&str; 6] = [
    "exports",
    "bursar",
    "archive",
    "remote-archive",
    "payments-drop",
    "payments-archive",
];
/// Every answer of the fees mock waits this long, as Alma's do: the time
/// between Alma making a payment and the stage hearing of it is the
/// window a kill must be able to hit.
const FEES_LATENCY_MS: u64 = 20;
/// Fines the payments stage works at once: few enough that the stage
/// lasts long enough to aim kills at.
const PAYMENTS_CONCURRENCY: usize = 8;

/// Where the payments stage's archive copy of the Bursar's file goes. The
/// copy is sftp-transport's atomic download (a `.<name>.<random>.part`
/// file, then a rename); a kill before the rename leaves that temporary
/// file there for good, because neither the stage nor the transport
/// removes earlier ones (the export and the send sweep theirs).
const ARCHIVE_PARTIALS: &str = "payments-archive/";

/// Which directions the crash test's scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Directions {
    /// Import, export, send (two days).
    One,
    /// Then the Bursar's payments into Alma.
    Both,
}

impl Directions {
    fn stages(self) -> &'static [&'static str] {
        match self {
            Directions::One => &STAGES[..PAYMENTS],
            Directions::Both => &STAGES,
        }
    }
}

fn progress_path(dir: &Path) -> PathBuf {
    dir.join("progress")
}

fn read_progress(dir: &Path) -> usize {
    std::fs::read_to_string(progress_path(dir))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

fn write_progress(dir: &Path, done: usize) -> Result<(), BenchError> {
    let staged = dir.join(".progress.tmp");
    std::fs::write(&staged, done.to_string())
        .and_then(|()| std::fs::rename(&staged, progress_path(dir)))
        .map_err(|e| BenchError::io("recording progress in", dir, e))
}

fn folder(dir: &Path, name: &str) -> Result<LocalDir, BenchError> {
    LocalDir::open(dir.join(name), IfMissing::Create)
        .map_err(|e| BenchError::Check(format!("opening {name}: {e}")))
}

/// Drops the Bursar's payments file, unless it is there already. Written
/// under a temporary name and renamed, so the stage never reads half a
/// file; the temporary name is fixed, so a killed write leaves nothing the
/// next write does not replace.
fn drop_payments_file(dir: &Path, csv: &str) -> Result<(), BenchError> {
    let folder = dir.join("payments-drop");
    std::fs::create_dir_all(&folder).map_err(|e| BenchError::io("creating", &folder, e))?;
    let path = folder.join(FILE_NAME);
    if std::fs::read(&path).is_ok_and(|bytes| bytes == csv.as_bytes()) {
        return Ok(());
    }
    let staged = folder.join(".payments-file.partial");
    std::fs::write(&staged, csv)
        .and_then(|()| std::fs::rename(&staged, &path))
        .map_err(|e| BenchError::io("writing", path, e))
}

/// The payments stage of the scenario: the Bursar's file from what
/// Direction 1 billed, then the stage against the fees mock.
async fn payments_stage(
    store: &SqliteStore,
    fees: &str,
    seed: u64,
    dir: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), BenchError> {
    let csv = payments_csv(&records(store).await?, seed);
    drop_payments_file(dir, &csv)?;
    let drop_folder = folder(dir, "payments-drop")?;
    // The client's rate limit is not what is tested: the concurrency and
    // the mock's latency set the pace.
    let alma = alma_client(fees, 1000)?;
    let mut config = PaymentsConfig::new(PREFIX, dir.join("payments-archive"), now.date_naive());
    config.concurrency = NonZeroUsize::new(PAYMENTS_CONCURRENCY);
    let (_, outcome) = run_payments(store, &alma, &drop_folder, &config, now).await?;
    // The mock answers every call: a failure is a fault of the scenario,
    // and a run that ends with one is not a run to compare.
    if !outcome.failures.is_empty() {
        return Err(BenchError::Check(format!(
            "the payments stage had failures:\n{}",
            outcome.summary()
        )));
    }
    Ok(())
}

/// `run-scenario`: the stages not yet done, in order; the payments stage
/// only with a fees mock.
pub async fn run_scenario(
    alma: &str,
    fees: Option<&str>,
    seed: u64,
    dir: &Path,
) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io("creating", dir, e))?;
    let store = SqliteStore::open(dir.join("state.db"))?;
    let analytics = analytics(alma, 1000)?;
    let export = export_config(dir.join("exports"));
    let bursar = folder(dir, "bursar")?;
    let remote_archive = folder(dir, "remote-archive")?;
    let targets = SendTargets {
        bursar: &bursar,
        remote_archive: Some(&remote_archive),
        local_archive: Some(dir.join("archive")),
    };
    let day1 = Institution::day1();
    let days: [NaiveDateTime; 2] = [day1, day1 + TimeDelta::days(2)];
    let directions = if fees.is_some() {
        Directions::Both
    } else {
        Directions::One
    };
    let started = Instant::now();
    let mut timings = Vec::new();
    for step in read_progress(dir)..directions.stages().len() {
        if step == PAYMENTS {
            if let Some(fees) = fees {
                // The morning after day 2.
                let now = (days[1] + TimeDelta::days(1)).and_utc();
                payments_stage(&store, fees, seed, dir, now).await?;
            }
            write_progress(dir, step + 1)?;
            timings.push(started.elapsed().as_secs_f64().to_string());
            continue;
        }
        let day = u8::try_from(step / 3 + 1).unwrap_or(1);
        let now = days[step / 3].and_utc();
        match step % 3 {
            0 => {
                run_import(&store, &analytics, &import_config(day), now).await?;
            }
            1 => {
                run_export(&store, &export, now.date_naive(), now).await?;
            }
            _ => {
                run_send(&store, &export, &targets, now).await?;
            }
        }
        write_progress(dir, step + 1)?;
        timings.push(started.elapsed().as_secs_f64().to_string());
    }
    // When each stage ended, for the crash test to aim its kills at.
    let path = dir.join("timings");
    std::fs::write(&path, timings.join("\n")).map_err(|e| BenchError::io("writing", path, e))?;
    Ok(())
}

/// The start and end of each stage of the clean run, in seconds after the
/// process was started.
fn stage_windows(clean_dir: &Path, total: Duration) -> Vec<(f64, f64)> {
    let ends: Vec<f64> = std::fs::read_to_string(clean_dir.join("timings"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    let total = total.as_secs_f64();
    // The process's start-up comes before the in-process clock started.
    let startup = (total - ends.last().copied().unwrap_or(total)).max(0.0);
    let mut windows = Vec::new();
    let mut from = 0.0;
    for end in ends {
        let to = startup + end;
        windows.push((from, to));
        from = to;
    }
    if windows.is_empty() {
        windows.push((0.0, total));
    }
    windows
}

/// What a finished run left: the store less the jobs, the files, and
/// (with Direction 2) the fees mock's state.
#[derive(PartialEq, Eq)]
struct Snapshot {
    records: StoreDump,
    files: BTreeMap<String, Vec<u8>>,
    fees: Option<MockFees>,
}

/// Reads what a finished run left; also returns its hidden leftovers
/// (temporary files of writes that were killed).
async fn snapshot(
    dir: &Path,
    fees_uri: Option<&str>,
) -> Result<(Snapshot, Vec<String>), BenchError> {
    let store = SqliteStore::open(dir.join("state.db"))?;
    let records = records(&store as &dyn FineStore).await?;
    drop(store);
    let mut files = BTreeMap::new();
    let mut leftovers = Vec::new();
    for name in FOLDERS {
        let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if file.starts_with('.') {
                leftovers.push(format!("{name}/{file}"));
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| BenchError::io("reading", path, e))?;
            files.insert(format!("{name}/{file}"), bytes);
        }
    }
    let fees = match fees_uri {
        Some(uri) => Some(mock_fees(uri).await?),
        None => None,
    };
    Ok((
        Snapshot {
            records,
            files,
            fees,
        },
        leftovers,
    ))
}

fn scenario_command(
    alma: &str,
    fees: Option<&str>,
    seed: u64,
    dir: &Path,
) -> Result<Command, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::io("finding the running executable", ".", e))?;
    let mut command = Command::new(exe);
    command
        .args(["run-scenario", "--alma", alma, "--seed"])
        .arg(seed.to_string())
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(fees) = fees {
        command.args(["--fees", fees]);
    }
    Ok(command)
}

fn run_to_completion(
    alma: &str,
    fees: Option<&str>,
    seed: u64,
    dir: &Path,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let output = scenario_command(alma, fees, seed, dir)?
        .output()
        .map_err(|e| BenchError::io("running the scenario in", dir, e))?;
    if !output.status.success() {
        return Err(BenchError::Child {
            what: format!("run-scenario --dir {}", dir.display()),
            message: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(start.elapsed())
}

pub struct CrashArgs {
    pub runs: u64,
    pub directions: Directions,
    pub size: Size,
    pub work_dir: Option<PathBuf>,
}

/// How a run's payments in Alma (the fees mock) differ from the clean
/// run's.
#[derive(Default)]
struct FeesComparison {
    /// One line per fee that differs.
    differences: Vec<String>,
    /// Payments accepted more than once (the same external transaction
    /// id on one fee).
    posted_twice: u64,
    /// Payments of the clean run that the run never made.
    lost: u64,
}

/// External transaction ids with how many accepted payments carry each.
fn payment_ids(fees: &MockFees, fee: &str) -> BTreeMap<String, u64> {
    let mut ids = BTreeMap::new();
    for payment in fees.fees.get(fee).map_or(&[][..], |fee| &fee.payments) {
        *ids.entry(payment.external_transaction_id.clone())
            .or_insert(0) += 1;
    }
    ids
}

fn compare_fees(clean: &MockFees, run: &MockFees) -> FeesComparison {
    let mut comparison = FeesComparison::default();
    let ids: std::collections::BTreeSet<&String> =
        clean.fees.keys().chain(run.fees.keys()).collect();
    for id in ids {
        let run_ids = payment_ids(run, id);
        comparison.posted_twice += run_ids.values().map(|n| n.saturating_sub(1)).sum::<u64>();
        let clean_ids = payment_ids(clean, id);
        comparison.lost += clean_ids
            .iter()
            .map(|(key, n)| n.saturating_sub(run_ids.get(key).copied().unwrap_or(0)))
            .sum::<u64>();
        let (a, b) = (clean.fees.get(id), run.fees.get(id));
        if a != b {
            let describe = |fee: Option<&crate::serve::MockFee>| {
                fee.map_or_else(
                    || "absent".to_string(),
                    |fee| {
                        format!(
                            "balance {}, {} payments accepted ({}), {} refused",
                            sync_core::Money::from_cents(fee.balance_cents),
                            fee.payments.len(),
                            fee.payments
                                .iter()
                                .map(|p| format!(
                                    "{} {}",
                                    sync_core::Money::from_cents(p.cents),
                                    p.external_transaction_id
                                ))
                                .collect::<Vec<_>>()
                                .join(", "),
                            fee.refused_posts
                        )
                    },
                )
            };
            comparison.differences.push(format!(
                "fee {id}: clean run {}; this run {}",
                describe(a),
                describe(b)
            ));
        }
    }
    comparison
}

fn describe_difference(clean: &Snapshot, run: &Snapshot) -> String {
    let mut out = Vec::new();
    let (a, b) = (&clean.records, &run.records);
    let counts = |d: &StoreDump| {
        [
            d.patrons.len(),
            d.fines.len(),
            d.alma_transactions.len(),
            d.account_lines.len(),
            d.bursar_transactions.len(),
            d.exports.len(),
            d.payments.len(),
        ]
    };
    if a != b {
        out.push(format!(
            "store differs (patrons, fines, Alma txns, lines, Bursar txns, exports, payments: clean {:?}, run {:?})",
            counts(a),
            counts(b)
        ));
        let clean_payments: HashMap<&str, _> =
            a.payments.iter().map(|p| (p.key.as_str(), p)).collect();
        for payment in &b.payments {
            let clean_payment = clean_payments.get(payment.key.as_str());
            if clean_payment != Some(&payment) {
                let fields = |p: &sync_core::records::PaymentRecord| {
                    format!(
                        "{:?}, balance read {:?}, posted {:?}",
                        p.outcome, p.balance_read, p.amount_posted
                    )
                };
                out.push(format!(
                    "payment record {}: {} (clean: {})",
                    payment.key,
                    fields(payment),
                    clean_payment.map_or_else(|| "none".to_string(), |p| fields(p))
                ));
            }
        }
    }
    for (name, bytes) in &clean.files {
        match run.files.get(name) {
            None => out.push(format!("missing file {name}")),
            Some(other) if other != bytes => out.push(format!("file {name} differs")),
            Some(_) => {}
        }
    }
    for name in run.files.keys().filter(|n| !clean.files.contains_key(*n)) {
        out.push(format!("extra file {name}"));
    }
    if let (Some(clean), Some(run)) = (&clean.fees, &run.fees) {
        out.extend(compare_fees(clean, run).differences);
    }
    out.join("; ")
}

/// Where a kill inside the payments stage left the payments, read before
/// the re-run: payments Alma (the mock) accepted whose record is still
/// `Posting` (the re-run must find them made and not post them again),
/// and `Posting` records whose POST Alma never saw (the re-run must post
/// them, or they are lost).
async fn payments_at_kill(dir: &Path, fees_uri: &str) -> Result<(u64, u64), BenchError> {
    let fees = mock_fees(fees_uri).await?;
    let store = SqliteStore::open(dir.join("state.db"))?;
    let posting: Vec<String> = store
        .dump()
        .await?
        .payments
        .into_iter()
        .filter(|record| record.outcome == PaymentOutcome::Posting)
        .map(|record| record.external_transaction_id)
        .collect();
    drop(store);
    let accepted: std::collections::BTreeSet<&str> = fees
        .fees
        .values()
        .flat_map(|fee| &fee.payments)
        .map(|payment| payment.external_transaction_id.as_str())
        .collect();
    let made = posting
        .iter()
        .filter(|id| accepted.contains(id.as_str()))
        .count();
    let made = u64::try_from(made).unwrap_or(u64::MAX);
    let not_made = u64::try_from(posting.len()).unwrap_or(u64::MAX) - made;
    Ok((made, not_made))
}

/// What the clean run's payments came to, from its store and the mock.
fn payments_summary(clean: &Snapshot) -> String {
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for record in &clean.records.payments {
        let name = match &record.outcome {
            PaymentOutcome::AlmaError { .. } => "AlmaError".to_string(),
            other => format!("{other:?}"),
        };
        *outcomes.entry(name).or_insert(0) += 1;
    }
    let (posts, fees, cents) = clean.fees.as_ref().map_or((0, 0, 0), |mock| {
        let paid: Vec<_> = mock
            .fees
            .values()
            .filter(|fee| !fee.payments.is_empty())
            .collect();
        (
            paid.iter().map(|fee| fee.payments.len()).sum::<usize>(),
            paid.len(),
            paid.iter()
                .flat_map(|fee| &fee.payments)
                .map(|p| p.cents)
                .sum::<i64>(),
        )
    });
    format!(
        "payments file {FILE_NAME}: records {outcomes:?}; Alma accepted {posts} payments on {fees} fees, {}",
        sync_core::Money::from_cents(cents)
    )
}

/// Stages to aim the kills at: each block of `stages` runs takes every
/// stage once, in a random order. Each run's stage is still uniform, and
/// a short loop (the CI's) reaches every stage.
struct StagePicker {
    stages: usize,
    order: Vec<usize>,
}

impl StagePicker {
    fn next(&mut self, rng: &mut Rng) -> usize {
        if self.order.is_empty() {
            self.order = (0..self.stages).collect();
            for i in (1..self.order.len()).rev() {
                let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(i);
                self.order.swap(i, j);
            }
        }
        self.order.pop().unwrap_or(0)
    }
}

// Kill delays are f64 fractions of a duration; no money here.
#[allow(clippy::float_arithmetic)]
pub async fn crash(args: CrashArgs) -> Result<String, BenchError> {
    let size = args.size;
    let stages = args.directions.stages();
    let server = ServerChild::serve_alma(&size, "1,2")?;
    let fees_server = match args.directions {
        Directions::One => None,
        Directions::Both => {
            let mut fees_args = vec!["serve-fees".to_string(), "--institution".to_string()];
            fees_args.extend(size_args(&size));
            fees_args.extend([
                "--day".to_string(),
                "2".to_string(),
                "--latency-ms".to_string(),
                FEES_LATENCY_MS.to_string(),
            ]);
            Some(ServerChild::spawn(&fees_args)?)
        }
    };
    let fees = fees_server.as_ref().map(|server| server.uri.as_str());
    let tmp = match &args.work_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .map_err(|e| BenchError::io("creating a work folder", ".", e))?;

    let clean_dir = tmp.path().join("clean");
    if let Some(uri) = fees {
        reset_mock_fees(uri).await?;
    }
    let clean_time = run_to_completion(&server.uri, fees, size.seed, &clean_dir)?;
    let (clean, _) = snapshot(&clean_dir, fees).await?;
    eprintln!(
        "crash: clean run {:.2} s: {} files, {} fines, {} exports, {} payment records",
        clean_time.as_secs_f64(),
        clean.files.len(),
        clean.records.fines.len(),
        clean.records.exports.len(),
        clean.records.payments.len()
    );
    if clean.records.exports.len() < 2 {
        return Err(BenchError::Check(
            "the scenario made fewer than two exports; nothing to test".into(),
        ));
    }
    if let Some(mock) = &clean.fees {
        // Compared with itself, the clean run's fees show only the
        // payments it posted twice: there must be none.
        let twice = compare_fees(mock, mock).posted_twice;
        if twice > 0 {
            return Err(BenchError::Check(format!(
                "the uninterrupted run posted {twice} payment(s) twice (the same external transaction id on one fee)"
            )));
        }
        let capped = clean
            .records
            .payments
            .iter()
            .filter(|p| p.outcome == PaymentOutcome::PaidCapped)
            .count();
        if mock.fees.values().all(|fee| fee.payments.is_empty()) || capped == 0 {
            return Err(BenchError::Check(
                "the scenario's payments stage paid nothing, or capped nothing; nothing to test"
                    .into(),
            ));
        }
    }

    let mut rng = Rng::new(size.seed.wrapping_mul(31).wrapping_add(7));
    // Each kill aims at a stage chosen uniformly (a short stage is as
    // likely a target as a long one), at a uniform point within the clean
    // run's time for that stage.
    let windows = stage_windows(&clean_dir, clean_time);
    let mut picker = StagePicker {
        stages: windows.len(),
        order: Vec::new(),
    };
    let mut killed_after = vec![0u64; stages.len() + 1];
    let mut finished_before_kill = 0u64;
    let mut leftovers_total = 0usize;
    let mut leftover_examples: Vec<String> = Vec::new();
    // The payments stage's archive copy is a download whose temporary
    // file nothing sweeps (see ARCHIVE_PARTIALS): counted apart, so the
    // swept folders' count stays a check.
    let mut archive_partials = 0usize;
    let mut archive_partial_examples: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    // Direction 2: kills in the payments stage; of those, kills that left
    // a payment made in Alma but not recorded Paid (and how many), and
    // kills that left a Posting record whose POST Alma never saw.
    let mut payments_kills = 0u64;
    let mut aimed_at_payments = 0u64;
    let mut kills_after_post = 0u64;
    let mut payments_after_post = 0u64;
    let mut kills_before_post = 0u64;
    let mut payments_before_post = 0u64;
    let mut posted_twice = 0u64;
    let mut lost = 0u64;
    let mut fees_differ = 0u64;
    let started = Instant::now();
    for run in 1..=args.runs {
        let dir = tmp.path().join(format!("run-{run}"));
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("creating", dir.clone(), e))?;
        if let Some(uri) = fees {
            reset_mock_fees(uri).await?;
        }
        let target = picker.next(&mut rng);
        aimed_at_payments += u64::from(target == PAYMENTS && fees.is_some());
        let (from, to) = windows.get(target).copied().unwrap_or((0.0, 0.0));
        let delay = Duration::from_secs_f64((to - from) * (rng.below(1_000_000) as f64 / 1e6));
        let mut child = scenario_command(&server.uri, fees, size.seed, &dir)?
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BenchError::io("starting the scenario in", dir.clone(), e))?;
        // Wait for the target stage to begin (the stages before it are
        // recorded done), then for the random point within it.
        while read_progress(&dir) < target && matches!(child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(delay).await;
        let mut kill_point = String::new();
        match child.try_wait() {
            Ok(Some(_)) => finished_before_kill += 1,
            _ => {
                // std's kill is SIGKILL on Unix: no handler, no clean-up.
                let _ = child.kill();
                let _ = child.wait();
                let done = read_progress(&dir);
                if let Some(count) = killed_after.get_mut(done.min(stages.len())) {
                    *count += 1;
                }
                if let (PAYMENTS, Some(uri)) = (done, fees) {
                    payments_kills += 1;
                    let (made, not_made) = payments_at_kill(&dir, uri).await?;
                    kills_after_post += u64::from(made > 0);
                    payments_after_post += made;
                    kills_before_post += u64::from(not_made > 0);
                    payments_before_post += not_made;
                    kill_point = format!(
                        ", in the payments stage with {made} payment(s) made in Alma but recorded Posting and {not_made} recorded Posting but not made"
                    );
                }
            }
        }
        let what = format!(
            "run {run} (aimed at {}, killed after {:.3} s{kill_point})",
            stages.get(target).copied().unwrap_or("?"),
            delay.as_secs_f64()
        );
        if let Err(error) = run_to_completion(&server.uri, fees, size.seed, &dir) {
            failures.push(format!("{what}: re-run failed: {error}"));
            continue;
        }
        let (snap, leftovers) = snapshot(&dir, fees).await?;
        for leftover in leftovers {
            let (total, examples) = if leftover.starts_with(ARCHIVE_PARTIALS) {
                (&mut archive_partials, &mut archive_partial_examples)
            } else {
                (&mut leftovers_total, &mut leftover_examples)
            };
            *total += 1;
            if examples.len() < 5 {
                examples.push(leftover);
            }
        }
        let mut twice_here = 0;
        if let (Some(clean_fees), Some(run_fees)) = (&clean.fees, &snap.fees) {
            let comparison = compare_fees(clean_fees, run_fees);
            twice_here = comparison.posted_twice;
            posted_twice += comparison.posted_twice;
            lost += comparison.lost;
            fees_differ += u64::from(!comparison.differences.is_empty());
        }
        if snap != clean || twice_here > 0 {
            failures.push(format!(
                "{what}: {} (kept in {})",
                describe_difference(&clean, &snap),
                dir.display()
            ));
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if run % 25 == 0 {
            eprintln!(
                "crash: {run}/{} runs, {} failures",
                args.runs,
                failures.len()
            );
        }
    }
    drop(fees_server);
    drop(server);

    let what = match args.directions {
        Directions::One => "two days (import, export, send each)",
        Directions::Both => "two days (import, export, send each), then payments",
    };
    let mut report = format!(
        "crash: seed {}, {} fines, {} transactions, {what}; clean run {:.2} s\n\
         {} runs in {:.1} s: {} killed, {} finished before the kill; {} differ from the clean run\n",
        size.seed,
        size.fines,
        size.transactions,
        clean_time.as_secs_f64(),
        args.runs,
        started.elapsed().as_secs_f64(),
        args.runs - finished_before_kill,
        finished_before_kill,
        failures.len()
    );
    report.push_str("killed with this many stages recorded done:");
    for (done, count) in killed_after.iter().enumerate() {
        report.push_str(&format!(" {done}: {count};"));
    }
    report.push('\n');
    report.push_str(&format!(
        "temporary files left behind by killed writes (ignored by the comparison): {leftovers_total} {leftover_examples:?}\n"
    ));
    if clean.fees.is_some() {
        report.push_str(&format!(
            "temporary files of killed payments-file downloads left in the import archive (ignored by the comparison): {archive_partials} {archive_partial_examples:?}\n"
        ));
    }
    if clean.fees.is_some() {
        report.push_str(&payments_summary(&clean));
        report.push('\n');
        report.push_str(&format!(
            "kills in the payments stage: {payments_kills} (runs aimed at it: {aimed_at_payments}; a kill aimed at a short stage can land in the next); {kills_after_post} of them between a POST Alma accepted and its Paid record ({payments_after_post} payments), \
             {kills_before_post} between a Posting record and its POST reaching Alma ({payments_before_post} payments)\n\
             payments in Alma after the re-runs: {posted_twice} payments posted twice, {lost} lost; {fees_differ} runs with a fee differing from the clean run\n"
        ));
    }
    for failure in &failures {
        report.push_str(&format!("FAILED {failure}\n"));
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        // Keep the folders of the failed runs for a person to look at.
        let kept = tmp.keep();
        Err(BenchError::Check(format!(
            "{report}folders kept under {}",
            kept.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::{MockFee, MockPayment};

    fn fees(payments: &[(&str, &str)]) -> MockFees {
        let mut fees = MockFees::default();
        for (fee, id) in payments {
            fees.fees
                .entry((*fee).to_string())
                .or_insert_with(|| MockFee {
                    patron: "1".into(),
                    original_cents: 1000,
                    balance_cents: 1000,
                    payments: Vec::new(),
                    refused_posts: 0,
                })
                .payments
                .push(MockPayment {
                    cents: 100,
                    external_transaction_id: (*id).to_string(),
                    method: "ONLINE".into(),
                    comment: String::new(),
                });
        }
        fees
    }

    #[test]
    fn a_payment_posted_twice_or_lost_is_counted() {
        let clean = fees(&[("f1", "a"), ("f1", "b"), ("f2", "c")]);
        let same = compare_fees(&clean, &clean);
        assert_eq!((same.posted_twice, same.lost), (0, 0));
        assert!(same.differences.is_empty());

        let twice = fees(&[("f1", "a"), ("f1", "b"), ("f2", "c"), ("f2", "c")]);
        let compared = compare_fees(&clean, &twice);
        assert_eq!((compared.posted_twice, compared.lost), (1, 0));
        assert_eq!(compared.differences.len(), 1);

        let lost = fees(&[("f1", "a"), ("f2", "c")]);
        let compared = compare_fees(&clean, &lost);
        assert_eq!((compared.posted_twice, compared.lost), (0, 1));
        assert_eq!(compared.differences.len(), 1);
    }

    #[test]
    fn every_stage_is_aimed_at_once_per_block() {
        let mut rng = Rng::new(5);
        let mut picker = StagePicker {
            stages: STAGES.len(),
            order: Vec::new(),
        };
        for _ in 0..3 {
            let mut block: Vec<usize> = (0..STAGES.len()).map(|_| picker.next(&mut rng)).collect();
            block.sort_unstable();
            assert_eq!(block, (0..STAGES.len()).collect::<Vec<_>>());
        }
    }
}
