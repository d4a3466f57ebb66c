//! Nothing is lost on a crash. The test re-runs its own binary as a writer
//! (`crash_writer`, a no-op unless `FINE_STORE_CRASH_WRITER` is set) that
//! applies large change sets and commits an export of each, in a loop, and
//! SIGKILLs it in the middle of a write. The store must then hold every
//! batch wholly or not at all, every export with all of its transactions
//! or not at all, and a re-run must complete it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use fine_store::{ChangeSet, ExportCommit, FineStore, SqliteStore};
use sync_core::records::{AlmaTxnType, BursarTxnType, ExportState, FineId};

const WRITER_ENV: &str = "FINE_STORE_CRASH_WRITER";
const URI_ENV: &str = "FINE_STORE_CRASH_URI";
const BATCHES: u64 = 1000;
const PREFIX: &str = "CRASH-WRITER:";

fn fine_id(batch: u64, j: usize) -> String {
    format!("B{batch:04}-F{j:05}")
}

/// Batch `i`: per fine, the fine, two Alma transactions, its account line
/// and a pending Bursar charge.
fn batch(i: u64, fines: usize) -> ChangeSet {
    let mut changes = ChangeSet {
        patrons: vec![patron(&format!("P{i}"), 100)],
        ..ChangeSet::default()
    };
    for j in 0..fines {
        let id = fine_id(i, j);
        let patron = format!("P{i}");
        changes
            .fines
            .push(fine(&id, &patron, Some(&format!("L{i}-{j}")), 1500));
        let mut charge = alma(
            Some(&format!("{id}-T1")),
            &id,
            AlmaTxnType::Fine,
            1500,
            "2024-03-01T09:00:00",
        );
        charge.pending = false;
        let mut waive = alma(
            Some(&format!("{id}-T2")),
            &id,
            AlmaTxnType::Waive,
            500,
            "2024-03-02T09:00:00",
        );
        waive.pending = false;
        changes.alma_transactions.extend([charge, waive]);
        changes.account_lines.push(line(&id, &patron, None));
        changes.bursar_transactions.push(bursar(
            &id,
            1,
            BursarTxnType::Fine,
            1000,
            ExportState::Pending,
        ));
    }
    changes
}

fn commit_of(i: u64, fines: usize) -> ExportCommit {
    ExportCommit {
        export: export(i + 1, None),
        billed_lines: (0..fines)
            .map(|j| {
                line(
                    &fine_id(i, j),
                    &format!("P{i}"),
                    Some(billing("2024-03-03")),
                )
            })
            .collect(),
        transactions: (0..fines)
            .map(|j| (FineId::new(fine_id(i, j)), 1))
            .collect(),
    }
}

/// The writer, when run as a child; a no-op otherwise.
#[test]
fn crash_writer() {
    let Ok(target) = std::env::var(WRITER_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (store, fines): (Box<dyn FineStore>, usize) = match target.split_once(':') {
            Some(("sqlite", path)) => (Box::new(SqliteStore::open(path).unwrap()), SQLITE_FINES),
            Some(("mongodb", database)) => {
                let uri = std::env::var(URI_ENV).unwrap();
                (Box::new(connect(&uri, database).await), MONGO_FINES)
            }
            _ => panic!("{WRITER_ENV}={target:?}: expected sqlite:PATH or mongodb:DATABASE"),
        };
        for i in 0..BATCHES {
            println!("{PREFIX} apply {i}");
            store.apply(batch(i, fines)).await.unwrap();
            println!("{PREFIX} applied {i}");
            println!("{PREFIX} commit {i}");
            store.commit_export(&commit_of(i, fines)).await.unwrap();
            println!("{PREFIX} committed {i}");
        }
    });
}

const SQLITE_FINES: usize = 3000;
const MONGO_FINES: usize = 300;

/// Where the writer was when it was killed.
#[derive(Debug, PartialEq)]
enum KilledIn {
    Apply(u64),
    Commit(u64),
    Between,
}

/// Starts the writer, waits until it begins the `target`-th write (0:
/// apply of batch 0, 1: its commit, 2: apply of batch 1, ...), lets it run
/// `delay` into it, and kills it.
fn run_and_kill(writer: &str, uri: Option<&str>, target: u64, delay: Duration) -> (KilledIn, u64) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "crash_writer",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(WRITER_ENV, writer)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(uri) = uri {
        command.env(URI_ENV, uri);
    }
    let mut child: Child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = String::new();
    let mut writes = 0;
    loop {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the writer stalled or died; last line {last:?}"));
        let Some(event) = line.strip_prefix(PREFIX) else {
            continue;
        };
        last = event.trim().to_string();
        if last.starts_with("apply ") || last.starts_with("commit ") {
            if writes == target {
                break;
            }
            writes += 1;
        }
    }
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Whatever the writer printed before it died tells where it was.
    while let Ok(line) = received.recv_timeout(Duration::from_millis(200)) {
        if let Some(event) = line.strip_prefix(PREFIX) {
            last = event.trim().to_string();
        }
    }
    let (verb, number) = last.split_once(' ').unwrap();
    let number: u64 = number.parse().unwrap();
    let killed_in = match verb {
        "apply" => KilledIn::Apply(number),
        "commit" => KilledIn::Commit(number),
        _ => KilledIn::Between,
    };
    (killed_in, number)
}

/// Every batch up to `last` is whole or absent, every export whole or
/// absent; returns which batches and exports are there.
async fn check_whole(store: &dyn FineStore, last: u64, fines: usize) -> Vec<(bool, bool)> {
    let dump = store.dump().await.unwrap();
    let in_batch = |i: u64, id: &str| id.starts_with(&format!("B{i:04}-"));
    let mut states = Vec::new();
    for i in 0..=last + 1 {
        let fine_count = dump
            .fines
            .iter()
            .filter(|f| in_batch(i, f.id.as_str()))
            .count();
        let alma_count = dump
            .alma_transactions
            .iter()
            .filter(|t| in_batch(i, t.fine_id.as_str()))
            .count();
        let line_count = dump
            .account_lines
            .iter()
            .filter(|l| in_batch(i, l.reference.as_str()))
            .count();
        let bursar: Vec<_> = dump
            .bursar_transactions
            .iter()
            .filter(|t| in_batch(i, t.reference.as_str()))
            .collect();
        let present = fine_count > 0;
        let expected = if present {
            (fines, 2 * fines, fines, fines)
        } else {
            (0, 0, 0, 0)
        };
        assert_eq!(
            (fine_count, alma_count, line_count, bursar.len()),
            expected,
            "batch {i} is half-written"
        );
        let exported = store.export(i + 1).await.unwrap().is_some();
        assert!(present || !exported, "export {} without its batch", i + 1);
        let lines_billed = dump
            .account_lines
            .iter()
            .filter(|l| in_batch(i, l.reference.as_str()) && l.billing.is_some())
            .count();
        if exported {
            assert!(
                bursar
                    .iter()
                    .all(|t| t.export == ExportState::Exported(i + 1)),
                "export {} is partial",
                i + 1
            );
            assert_eq!(
                lines_billed,
                fines,
                "export {} billed only part of its lines",
                i + 1
            );
            assert_eq!(store.export_items(i + 1).await.unwrap().len(), fines);
        } else {
            assert!(
                bursar.iter().all(|t| t.export == ExportState::Pending),
                "batch {i} partly exported"
            );
            assert_eq!(lines_billed, 0, "batch {i} billed without an export");
        }
        states.push((present, exported));
    }
    assert!(
        dump.fines
            .iter()
            .all(|f| (0..=last + 1).any(|i| in_batch(i, f.id.as_str()))),
        "a batch beyond the kill point"
    );
    states
}

/// The re-run of every batch the writer began (0 to `last`) that is not
/// exported yet: apply its change set (harmless when already stored),
/// then commit its export.
async fn complete(store: &dyn FineStore, states: &[(bool, bool)], last: u64, fines: usize) {
    for i in 0..=last {
        let (_, exported) = states[i as usize];
        if !exported {
            store.apply(batch(i, fines)).await.unwrap();
            store.commit_export(&commit_of(i, fines)).await.unwrap();
        }
    }
}

/// Kill points: (n-th write to interrupt, delay into it).
const KILLS: [(u64, u64); 6] = [(2, 5), (3, 2), (4, 20), (5, 10), (2, 0), (3, 40)];

#[test]
fn sqlite_kill_mid_write_loses_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut interrupted = Vec::new();
    for (round, (target, delay_ms)) in KILLS.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let writer = format!("sqlite:{}", path.display());
        let (killed_in, last) =
            run_and_kill(&writer, None, target, Duration::from_millis(delay_ms));
        eprintln!("round {round}: killed in {killed_in:?}");
        interrupted.push(killed_in);
        runtime.block_on(async {
            let store = SqliteStore::open(&path).unwrap();
            let states = check_whole(&store, last, SQLITE_FINES).await;
            complete(&store, &states, last, SQLITE_FINES).await;
            let states = check_whole(&store, last, SQLITE_FINES).await;
            let expected = (last + 1) as usize;
            assert!(
                states[..expected].iter().all(|s| *s == (true, true)),
                "re-run left {states:?}"
            );
        });
    }
    assert!(
        interrupted.iter().any(|k| matches!(k, KilledIn::Apply(_))),
        "no kill landed inside an apply: {interrupted:?}"
    );
    assert!(
        interrupted.iter().any(|k| matches!(k, KilledIn::Commit(_))),
        "no kill landed inside a commit: {interrupted:?}"
    );
}

#[test]
fn mongodb_kill_mid_write_loses_nothing() {
    let Some(uri) = mongo_uri() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut interrupted = Vec::new();
    for (round, (target, delay_ms)) in KILLS.into_iter().take(3).enumerate() {
        let database = fresh_database(&format!("crash{round}"));
        let writer = format!("mongodb:{database}");
        let started = Instant::now();
        let (killed_in, last) = run_and_kill(
            &writer,
            Some(&uri),
            target,
            Duration::from_millis(delay_ms * 10),
        );
        eprintln!(
            "round {round}: killed in {killed_in:?} after {:?}",
            started.elapsed()
        );
        interrupted.push(killed_in);
        runtime.block_on(async {
            let store = connect(&uri, &database).await;
            let states = check_whole(&store, last, MONGO_FINES).await;
            let started = Instant::now();
            complete(&store, &states, last, MONGO_FINES).await;
            // A transaction the dead writer left open holds its documents
            // until the server times it out; the re-run waits for that.
            eprintln!("round {round}: re-run completed in {:?}", started.elapsed());
            let states = check_whole(&store, last, MONGO_FINES).await;
            let expected = (last + 1) as usize;
            assert!(
                states[..expected].iter().all(|s| *s == (true, true)),
                "re-run left {states:?}"
            );
            drop_database(&uri, &database).await;
        });
    }
    assert!(
        interrupted.iter().any(|k| *k != KilledIn::Between),
        "no kill landed inside a write: {interrupted:?}"
    );
}
