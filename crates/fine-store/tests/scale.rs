//! The SQLite store at production scale: 200,000 fines with 1,000,000
//! Alma transactions. Slow; run on demand:
//! `cargo test -p fine-store --release --test scale -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use fine_store::{ChangeSet, ExportCommit, FineStore, SqliteStore};
use sync_core::records::{AlmaTxnType, BursarTxnType, ExportState, FineId};

const FINES: usize = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 200,000 fines / 1,000,000 transactions"]
async fn sqlite_at_production_scale() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    let mut changes = ChangeSet::default();
    for j in 0..FINES {
        let id = format!("F{j:07}");
        let patron = format!("P{}", j % 50_000);
        changes
            .fines
            .push(fine(&id, &patron, Some(&format!("L{j}")), 5000));
        for k in 0..5 {
            let kind = if k == 0 {
                AlmaTxnType::Fine
            } else {
                AlmaTxnType::Waive
            };
            let cents = if k == 0 { 5000 } else { 100 };
            let created = format!("2024-03-0{}T09:00:00", k + 1);
            changes.alma_transactions.push(alma(
                Some(&format!("{id}-T{k}")),
                &id,
                kind,
                cents,
                &created,
            ));
        }
        changes.account_lines.push(line(&id, &patron, None));
        changes.bursar_transactions.push(bursar(
            &id,
            1,
            BursarTxnType::Fine,
            4600,
            ExportState::Pending,
        ));
    }
    let started = Instant::now();
    store.apply(changes.clone()).await.unwrap();
    eprintln!("apply: {:?}", started.elapsed());

    let started = Instant::now();
    let pending = store.fines_with_pending_alma().await.unwrap();
    let ledgers = store.ledgers(&pending).await.unwrap();
    assert_eq!(ledgers.len(), FINES);
    eprintln!(
        "ledgers of fines with pending Alma: {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let pending = store.pending_export().await.unwrap();
    assert_eq!(pending.len(), FINES);
    eprintln!("pending_export: {:?}", started.elapsed());

    let started = Instant::now();
    let commit = ExportCommit {
        export: export(1, None),
        billed_lines: pending
            .iter()
            .map(|item| {
                let mut line = item.line.clone();
                line.billing = Some(billing("2024-03-03"));
                line
            })
            .collect(),
        transactions: pending
            .iter()
            .map(|item| (item.transaction.reference.clone(), item.transaction.n))
            .collect(),
    };
    store.commit_export(&commit).await.unwrap();
    eprintln!("commit_export: {:?}", started.elapsed());

    let started = Instant::now();
    let dump = store.dump().await.unwrap();
    eprintln!("dump: {:?}", started.elapsed());
    let started = Instant::now();
    store.load(&dump).await.unwrap();
    eprintln!("load: {:?}", started.elapsed());
    let started = Instant::now();
    let some = store.ledgers(&[FineId::new("F0100000")]).await.unwrap();
    assert_eq!(some[0].alma.len(), 5);
    eprintln!("one ledger: {:?}", started.elapsed());
}
