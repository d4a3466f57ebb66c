//! One conformance suite for every `FineStore`: each behaviour the trait
//! documents is a function over `&dyn FineStore`, run against SQLite, and
//! against MongoDB (with and without transactions) when a server is
//! available (see `common::mongo_uri`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use fine_store::{
    ChangeSet, ExportCommit, ExportItem, FineLedger, FineStore, StoreDump, StoreError,
};
use sync_core::records::{
    AlmaTxnType, BursarTxnType, ExportState, FineId, JobKind, JobStatus, LoanId, PatronId,
    PaymentOutcome,
};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    // A folder that does not exist yet: created on first use.
                    let path = dir.path().join("state").join("store.db");
                    let store = fine_store::SqliteStore::open(&path).unwrap();
                    super::$name(&store).await;
                }
            )*
        }
        mod mongodb {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::on_mongo(stringify!($name), false, |store| Box::pin(super::$name(store))).await;
                }
            )*
        }
        mod mongodb_without_transactions {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::on_mongo(stringify!($name), true, |store| Box::pin(super::$name(store))).await;
                }
            )*
        }
    };
}

type Check = for<'a> fn(&'a dyn FineStore) -> std::pin::Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Runs `check` on a fresh database, dropped afterwards even if it fails.
async fn on_mongo(test: &str, plain: bool, check: Check) {
    use futures::FutureExt;
    let Some(uri) = mongo_uri() else { return };
    let database = fresh_database(test);
    let mut store = connect(&uri, &database).await;
    if plain {
        store = store.without_transactions();
    } else {
        assert!(
            store.uses_transactions(),
            "the test server should run transactions"
        );
    }
    let outcome = std::panic::AssertUnwindSafe(check(&store))
        .catch_unwind()
        .await;
    drop_database(&uri, &database).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

conformance!(
    empty_store_reads_nothing,
    apply_upserts_by_natural_key_idempotently,
    ledgers_are_whole_and_ordered,
    new_ledgers_are_written_like_their_records,
    ledgers_by_loan_and_patrons,
    known_credit_sources_are_fines_or_credit_sources,
    fines_with_pending_alma_only,
    reconciled_alma_clears_only_the_flag,
    reconciling_an_unknown_transaction_writes_nothing,
    commit_export_takes_pending_transactions,
    commit_export_conflicts_change_nothing,
    apply_refuses_to_change_an_exported_transaction,
    unsent_exports_oldest_first_and_mark_sent,
    exports_of_fine_oldest_first,
    payment_records_upsert_and_lookup,
    jobs_are_numbered_and_found_by_status,
    dump_is_ordered_and_load_replaces_everything,
    load_with_a_duplicate_changes_nothing,
);

// ---- Fixtures ----

/// Two fines on loan L1, one without loan; ledgers deliberately given out
/// of order.
fn sample() -> ChangeSet {
    ChangeSet {
        patrons: vec![patron("P2", -500), patron("P1", 6500)],
        fines: vec![
            fine("F2", "P1", Some("L1"), 1000),
            fine("F1", "P1", Some("L1"), 6500),
            fine("F10", "P2", None, 500),
        ],
        alma_transactions: vec![
            alma(
                Some("T3"),
                "F1",
                AlmaTxnType::Waive,
                500,
                "2024-03-05T10:00:00",
            ),
            alma(
                Some("T2"),
                "F1",
                AlmaTxnType::Fine,
                6500,
                "2024-03-01T09:00:00",
            ),
            alma(None, "F1", AlmaTxnType::Fine, 0, "2024-03-01T09:00:00"),
            alma(
                Some("T4"),
                "F2",
                AlmaTxnType::Fine,
                1000,
                "2024-03-01T09:00:00",
            ),
            alma(
                Some("T5"),
                "F10",
                AlmaTxnType::Fine,
                500,
                "2024-03-01T09:00:00",
            ),
        ],
        account_lines: vec![line("F1", "P1", None), line("F2", "P1", None)],
        bursar_transactions: vec![
            bursar("F1", 2, BursarTxnType::Waive, -500, ExportState::Pending),
            bursar("F1", 1, BursarTxnType::Fine, 6500, ExportState::Pending),
            bursar("F2", 1, BursarTxnType::Fine, 1000, ExportState::Pending),
        ],
        reconciled_alma: Vec::new(),
        new_ledgers: Vec::new(),
    }
}

fn ledger_f1() -> FineLedger {
    FineLedger {
        fine: fine("F1", "P1", Some("L1"), 6500),
        alma: vec![
            // Equal times: by key ("T2" < "opening:F1").
            alma(
                Some("T2"),
                "F1",
                AlmaTxnType::Fine,
                6500,
                "2024-03-01T09:00:00",
            ),
            alma(None, "F1", AlmaTxnType::Fine, 0, "2024-03-01T09:00:00"),
            alma(
                Some("T3"),
                "F1",
                AlmaTxnType::Waive,
                500,
                "2024-03-05T10:00:00",
            ),
        ],
        lines: vec![line("F1", "P1", None)],
        bursar: vec![
            bursar("F1", 1, BursarTxnType::Fine, 6500, ExportState::Pending),
            bursar("F1", 2, BursarTxnType::Waive, -500, ExportState::Pending),
        ],
    }
}

fn ledger_f2() -> FineLedger {
    FineLedger {
        fine: fine("F2", "P1", Some("L1"), 1000),
        alma: vec![alma(
            Some("T4"),
            "F2",
            AlmaTxnType::Fine,
            1000,
            "2024-03-01T09:00:00",
        )],
        lines: vec![line("F2", "P1", None)],
        bursar: vec![bursar(
            "F2",
            1,
            BursarTxnType::Fine,
            1000,
            ExportState::Pending,
        )],
    }
}

fn ledger_f10() -> FineLedger {
    FineLedger {
        fine: fine("F10", "P2", None, 500),
        alma: vec![alma(
            Some("T5"),
            "F10",
            AlmaTxnType::Fine,
            500,
            "2024-03-01T09:00:00",
        )],
        lines: vec![],
        bursar: vec![],
    }
}

/// What committing export `seq` of every pending transaction of `sample`
/// looks like.
fn commit_all(seq: u64) -> ExportCommit {
    ExportCommit {
        export: export(seq, None),
        billed_lines: vec![
            line("F1", "P1", Some(billing("2024-03-03"))),
            line("F2", "P1", Some(billing("2024-03-03"))),
        ],
        transactions: vec![
            (FineId::new("F1"), 1),
            (FineId::new("F1"), 2),
            (FineId::new("F2"), 1),
        ],
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, needle: &str) {
    match result {
        Err(StoreError::Conflict { message, .. }) => {
            assert!(
                message.contains(needle),
                "conflict message {message:?} lacks {needle:?}"
            )
        }
        other => panic!("expected a Conflict mentioning {needle:?}, got {other:?}"),
    }
}

// ---- Checks ----

async fn empty_store_reads_nothing(store: &dyn FineStore) {
    assert!(store.describe().starts_with("sqlite:") || store.describe().starts_with("mongodb:"));
    assert_eq!(store.patrons(&[PatronId::new("P1")]).await.unwrap(), vec![]);
    assert_eq!(store.ledgers(&ids(&["F1"])).await.unwrap(), vec![]);
    assert_eq!(
        store.ledgers_by_loan(&[LoanId::new("L1")]).await.unwrap(),
        vec![]
    );
    assert_eq!(
        store.known_credit_sources(&ids(&["C1"])).await.unwrap(),
        vec![]
    );
    assert_eq!(store.fines_with_pending_alma().await.unwrap(), vec![]);
    assert_eq!(store.pending_export().await.unwrap(), vec![]);
    assert_eq!(store.export_items(1).await.unwrap(), vec![]);
    assert_eq!(store.export(1).await.unwrap(), None);
    assert_eq!(store.last_export().await.unwrap(), None);
    assert_eq!(store.unsent_exports().await.unwrap(), vec![]);
    assert_eq!(
        store.exports_of_fine(&FineId::new("F1")).await.unwrap(),
        vec![]
    );
    assert_eq!(store.payment_records(&["k".into()]).await.unwrap(), vec![]);
    assert_eq!(
        store
            .payment_records_of_fine(&FineId::new("F1"))
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        store
            .last_successful_job(JobKind::AlmaImport)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.dump().await.unwrap(), StoreDump::default());
    store.apply(ChangeSet::default()).await.unwrap();
    assert_eq!(store.dump().await.unwrap(), StoreDump::default());
}

async fn apply_upserts_by_natural_key_idempotently(store: &dyn FineStore) {
    let changes = sample();
    store.apply(changes.clone()).await.unwrap();
    let once = store.dump().await.unwrap();
    store.apply(changes.clone()).await.unwrap();
    assert_eq!(
        store.dump().await.unwrap(),
        once,
        "applying twice is applying once"
    );
    assert_eq!(once.fines.len(), 3);
    assert_eq!(once.alma_transactions.len(), 5);

    // Same keys, new content: replaced, not added.
    let mut paid = fine("F1", "P1", Some("L1"), 6500);
    paid.remaining_amount = money(0);
    paid.closed = true;
    let mut settled = alma(
        Some("T3"),
        "F1",
        AlmaTxnType::Waive,
        500,
        "2024-03-05T10:00:00",
    );
    settled.pending = false;
    let mut opening = alma(None, "F1", AlmaTxnType::Fine, 0, "2024-03-01T09:00:00");
    opening.note = Some("opening".into());
    let update = ChangeSet {
        patrons: vec![patron("P1", 0)],
        fines: vec![paid.clone()],
        alma_transactions: vec![settled.clone(), opening.clone()],
        account_lines: vec![line("F1", "P1", Some(billing("2024-03-03")))],
        bursar_transactions: vec![bursar(
            "F1",
            2,
            BursarTxnType::Credit,
            -700,
            ExportState::Pending,
        )],
        reconciled_alma: Vec::new(),
        new_ledgers: Vec::new(),
    };
    store.apply(update.clone()).await.unwrap();
    let after = store.dump().await.unwrap();
    let mut expected = once.clone();
    expected.patrons[0] = patron("P1", 0);
    expected.fines[0] = paid;
    // Keys: "T2" < "T3" < "T4" < "T5" < "opening:F1".
    expected.alma_transactions[1] = settled;
    expected.alma_transactions[4] = opening;
    expected.account_lines[0] = line("F1", "P1", Some(billing("2024-03-03")));
    expected.bursar_transactions[1] =
        bursar("F1", 2, BursarTxnType::Credit, -700, ExportState::Pending);
    assert_eq!(after, expected);
}

async fn ledgers_are_whole_and_ordered(store: &dyn FineStore) {
    store.apply(sample()).await.unwrap();
    let ledgers = store
        .ledgers(&ids(&["F2", "F1", "missing", "F1", "F10"]))
        .await
        .unwrap();
    assert_eq!(ledgers, vec![ledger_f1(), ledger_f10(), ledger_f2()]);
    assert_eq!(
        store.ledgers(&ids(&["F10"])).await.unwrap(),
        vec![ledger_f10()]
    );
    assert_eq!(store.ledgers(&[]).await.unwrap(), vec![]);
}

async fn new_ledgers_are_written_like_their_records(store: &dyn FineStore) {
    let records = sample();
    let whole = ChangeSet {
        patrons: records.patrons.clone(),
        new_ledgers: vec![ledger_f10(), ledger_f2(), ledger_f1()],
        ..ChangeSet::default()
    };
    store.apply(whole).await.unwrap();
    let from_ledgers = store.dump().await.unwrap();
    assert_eq!(
        store.ledgers(&ids(&["F1", "F2", "F10"])).await.unwrap(),
        vec![ledger_f1(), ledger_f10(), ledger_f2()]
    );
    store.load(&StoreDump::default()).await.unwrap();
    store.apply(records).await.unwrap();
    assert_eq!(store.dump().await.unwrap(), from_ledgers);
}

async fn ledgers_by_loan_and_patrons(store: &dyn FineStore) {
    store.apply(sample()).await.unwrap();
    let by_loan = store
        .ledgers_by_loan(&[LoanId::new("L1"), LoanId::new("L9"), LoanId::new("L1")])
        .await
        .unwrap();
    assert_eq!(by_loan, vec![ledger_f1(), ledger_f2()]);
    assert_eq!(
        store.ledgers_by_loan(&[LoanId::new("L9")]).await.unwrap(),
        vec![]
    );
    let patrons = store
        .patrons(&[
            PatronId::new("P2"),
            PatronId::new("P9"),
            PatronId::new("P1"),
        ])
        .await
        .unwrap();
    assert_eq!(patrons, vec![patron("P1", 6500), patron("P2", -500)]);
}

async fn known_credit_sources_are_fines_or_credit_sources(store: &dyn FineStore) {
    let mut credit = alma(
        Some("T9"),
        "F1",
        AlmaTxnType::Credit,
        300,
        "2024-03-06T10:00:00",
    );
    credit.source_credit_fine = Some(FineId::new("C2"));
    let changes = ChangeSet {
        fines: vec![
            fine("C1", "P1", Some("L1"), 300),
            fine("F1", "P1", Some("L1"), 6500),
        ],
        alma_transactions: vec![credit],
        ..ChangeSet::default()
    };
    store.apply(changes.clone()).await.unwrap();
    let known = store
        .known_credit_sources(&ids(&["C3", "C2", "C1", "C2"]))
        .await
        .unwrap();
    assert_eq!(known, ids(&["C1", "C2"]));
}

async fn fines_with_pending_alma_only(store: &dyn FineStore) {
    let mut changes = sample();
    // F2's only transaction is reconciled: F2 drops out.
    changes.alma_transactions[3].pending = false;
    store.apply(changes).await.unwrap();
    assert_eq!(
        store.fines_with_pending_alma().await.unwrap(),
        ids(&["F1", "F10"])
    );
}

async fn reconciled_alma_clears_only_the_flag(store: &dyn FineStore) {
    let mut records = sample();
    // A note that spells the flag out must come through unchanged.
    records.alma_transactions[0].note = Some(r#"said "pending":true, "pending": true"#.into());
    store.apply(records).await.unwrap();
    let before = store.dump().await.unwrap();
    let keys: Vec<String> = ledger_f1().alma.iter().map(|t| t.key()).collect();
    store
        .apply(ChangeSet {
            reconciled_alma: keys.clone(),
            ..ChangeSet::default()
        })
        .await
        .unwrap();
    let mut f1 = ledger_f1();
    for txn in &mut f1.alma {
        txn.pending = false;
        if txn.has_key("T3") {
            txn.note = Some(r#"said "pending":true, "pending": true"#.into());
        }
    }
    assert_eq!(
        store.ledgers(&ids(&["F1"])).await.unwrap(),
        vec![f1],
        "the records read back say reconciled, notes untouched"
    );
    assert_eq!(
        store.fines_with_pending_alma().await.unwrap(),
        ids(&["F10", "F2"])
    );
    let mut expected = before;
    for txn in &mut expected.alma_transactions {
        if keys.contains(&txn.key()) {
            txn.pending = false;
        }
    }
    assert_eq!(
        store.dump().await.unwrap(),
        expected,
        "nothing else changed"
    );
    // Reconciling again is a no-op, not an error.
    store
        .apply(ChangeSet {
            reconciled_alma: keys,
            ..ChangeSet::default()
        })
        .await
        .unwrap();
    assert_eq!(store.dump().await.unwrap(), expected);
}

async fn reconciling_an_unknown_transaction_writes_nothing(store: &dyn FineStore) {
    store.apply(sample()).await.unwrap();
    let before = store.dump().await.unwrap();
    let mut changes = ChangeSet {
        patrons: vec![patron("P9", 100)],
        reconciled_alma: vec!["T2".to_string(), "T404".to_string()],
        ..ChangeSet::default()
    };
    changes.fines.push(fine("F99", "P9", None, 100));
    assert_conflict(store.apply(changes).await, "T404");
    assert_eq!(store.dump().await.unwrap(), before);
}

async fn commit_export_takes_pending_transactions(store: &dyn FineStore) {
    store.apply(sample()).await.unwrap();
    let pending = store.pending_export().await.unwrap();
    let item = |reference: &str, n, kind, cents| ExportItem {
        transaction: bursar(reference, n, kind, cents, ExportState::Pending),
        line: line(reference, "P1", None),
    };
    assert_eq!(
        pending,
        vec![
            item("F1", 1, BursarTxnType::Fine, 6500),
            item("F1", 2, BursarTxnType::Waive, -500),
            item("F2", 1, BursarTxnType::Fine, 1000),
        ]
    );

    // Export 7 takes F1#1 and F2#1; F1#2 stays pending.
    let commit = ExportCommit {
        export: export(7, None),
        billed_lines: vec![
            line("F1", "P1", Some(billing("2024-03-03"))),
            line("F2", "P1", Some(billing("2024-03-03"))),
        ],
        transactions: vec![(FineId::new("F2"), 1), (FineId::new("F1"), 1)],
    };
    store.commit_export(&commit).await.unwrap();
    let exported = |reference: &str, n, kind, cents| ExportItem {
        transaction: bursar(reference, n, kind, cents, ExportState::Exported(7)),
        line: line(reference, "P1", Some(billing("2024-03-03"))),
    };
    assert_eq!(
        store.export_items(7).await.unwrap(),
        vec![
            exported("F1", 1, BursarTxnType::Fine, 6500),
            exported("F2", 1, BursarTxnType::Fine, 1000),
        ]
    );
    assert_eq!(store.export(7).await.unwrap(), Some(export(7, None)));
    assert_eq!(store.last_export().await.unwrap(), Some(export(7, None)));
    assert_eq!(store.export(6).await.unwrap(), None);
    assert_eq!(
        store.pending_export().await.unwrap(),
        vec![ExportItem {
            transaction: bursar("F1", 2, BursarTxnType::Waive, -500, ExportState::Pending),
            line: line("F1", "P1", Some(billing("2024-03-03"))),
        }]
    );
    let ledgers = store.ledgers(&ids(&["F1"])).await.unwrap();
    assert_eq!(
        ledgers[0].bursar,
        vec![
            bursar("F1", 1, BursarTxnType::Fine, 6500, ExportState::Exported(7)),
            bursar("F1", 2, BursarTxnType::Waive, -500, ExportState::Pending),
        ]
    );

    // The rest goes out in export 8; the last export is then 8.
    let rest = ExportCommit {
        export: export(8, None),
        billed_lines: vec![],
        transactions: vec![(FineId::new("F1"), 2)],
    };
    store.commit_export(&rest).await.unwrap();
    assert_eq!(store.last_export().await.unwrap(), Some(export(8, None)));
    assert_eq!(store.pending_export().await.unwrap(), vec![]);
}

async fn commit_export_conflicts_change_nothing(store: &dyn FineStore) {
    store.apply(sample()).await.unwrap();
    store
        .commit_export(&ExportCommit {
            export: export(1, None),
            billed_lines: vec![line("F2", "P1", Some(billing("2024-03-03")))],
            transactions: vec![(FineId::new("F2"), 1)],
        })
        .await
        .unwrap();
    let before = store.dump().await.unwrap();

    // Sequence number taken.
    let mut taken = commit_all(1);
    taken
        .transactions
        .retain(|(reference, _)| reference.as_str() == "F1");
    assert_conflict(store.commit_export(&taken).await, "1");
    assert_eq!(store.dump().await.unwrap(), before);

    // F2#1 went out in export 1 already.
    assert_conflict(store.commit_export(&commit_all(2)).await, "F2#1");
    assert_eq!(store.dump().await.unwrap(), before);

    // A transaction that is not stored.
    let mut unknown = commit_all(2);
    unknown.transactions = vec![(FineId::new("F1"), 1), (FineId::new("F1"), 9)];
    assert_conflict(store.commit_export(&unknown).await, "F1#9");
    assert_eq!(store.dump().await.unwrap(), before);

    // Listed twice.
    let mut twice = commit_all(2);
    twice.transactions = vec![(FineId::new("F1"), 1), (FineId::new("F1"), 1)];
    assert_conflict(store.commit_export(&twice).await, "F1#1");
    assert_eq!(store.dump().await.unwrap(), before);
}

async fn apply_refuses_to_change_an_exported_transaction(store: &dyn FineStore) {
    store.apply(sample()).await.unwrap();
    store.commit_export(&commit_all(1)).await.unwrap();
    let before = store.dump().await.unwrap();

    // Replaying the original change set would put F1#1 back to pending:
    // the Bursar would be billed twice. Refused whole: the new fine F3 in
    // the same change set is not written either.
    let mut replay = sample();
    replay.fines.push(fine("F3", "P1", None, 200));
    replay.alma_transactions.push(alma(
        Some("T30"),
        "F3",
        AlmaTxnType::Fine,
        200,
        "2024-03-07T10:00:00",
    ));
    assert_conflict(store.apply(replay.clone()).await, "went out in an export");
    assert_eq!(store.dump().await.unwrap(), before);

    // A changed amount is refused too.
    let changed = ChangeSet {
        fines: vec![fine("F3", "P1", None, 200)],
        bursar_transactions: vec![bursar(
            "F2",
            1,
            BursarTxnType::Fine,
            999,
            ExportState::Exported(1),
        )],
        ..ChangeSet::default()
    };
    assert_conflict(store.apply(changed.clone()).await, "F2#1");
    assert_eq!(store.dump().await.unwrap(), before);

    // Unchanged it may be written again, next to new records.
    let unchanged = ChangeSet {
        fines: vec![fine("F3", "P1", None, 200)],
        bursar_transactions: vec![
            bursar("F2", 1, BursarTxnType::Fine, 1000, ExportState::Exported(1)),
            bursar("F2", 2, BursarTxnType::Waive, -1000, ExportState::Pending),
        ],
        ..ChangeSet::default()
    };
    store.apply(unchanged.clone()).await.unwrap();
    let after = store.dump().await.unwrap();
    assert_eq!(after.fines.len(), 4);
    assert_eq!(
        after.bursar_transactions.last(),
        Some(&bursar(
            "F2",
            2,
            BursarTxnType::Waive,
            -1000,
            ExportState::Pending
        ))
    );
}

async fn unsent_exports_oldest_first_and_mark_sent(store: &dyn FineStore) {
    for seq in [3, 1, 2] {
        store
            .commit_export(&ExportCommit {
                export: export(seq, None),
                billed_lines: vec![],
                transactions: vec![],
            })
            .await
            .unwrap();
    }
    assert_eq!(
        store.unsent_exports().await.unwrap(),
        vec![export(1, None), export(2, None), export(3, None)]
    );
    store
        .mark_export_sent(2, utc("2024-03-10T07:00:00"))
        .await
        .unwrap();
    assert_eq!(
        store.unsent_exports().await.unwrap(),
        vec![export(1, None), export(3, None)]
    );
    assert_eq!(
        store.export(2).await.unwrap(),
        Some(export(2, Some("2024-03-10T07:00:00")))
    );
    assert_eq!(store.last_export().await.unwrap(), Some(export(3, None)));
    assert_conflict(
        store.mark_export_sent(9, utc("2024-03-10T07:00:00")).await,
        "9",
    );
}

async fn exports_of_fine_oldest_first(store: &dyn FineStore) {
    store.apply(sample()).await.unwrap();
    let only = |seq, transactions: Vec<(FineId, u32)>| ExportCommit {
        export: export(seq, None),
        billed_lines: vec![],
        transactions,
    };
    store
        .commit_export(&only(4, vec![(FineId::new("F1"), 2)]))
        .await
        .unwrap();
    store
        .commit_export(&only(5, vec![(FineId::new("F2"), 1)]))
        .await
        .unwrap();
    store
        .commit_export(&only(2, vec![(FineId::new("F1"), 1)]))
        .await
        .unwrap();
    assert_eq!(
        store.exports_of_fine(&FineId::new("F1")).await.unwrap(),
        vec![export(2, None), export(4, None)]
    );
    assert_eq!(
        store.exports_of_fine(&FineId::new("F2")).await.unwrap(),
        vec![export(5, None)]
    );
    assert_eq!(
        store.exports_of_fine(&FineId::new("F10")).await.unwrap(),
        vec![]
    );
}

async fn payment_records_upsert_and_lookup(store: &dyn FineStore) {
    let posting = payment(
        "k2",
        Some("F1"),
        PaymentOutcome::Posting,
        "2024-03-08T10:00:00",
    );
    let earlier = payment(
        "k9",
        Some("F1"),
        PaymentOutcome::Paid,
        "2024-03-01T10:00:00",
    );
    let elsewhere = payment("k1", None, PaymentOutcome::NotFound, "2024-03-02T10:00:00");
    for record in [&posting, &earlier, &elsewhere] {
        store.put_payment_record(record).await.unwrap();
    }
    // The posting record is settled: the same key, replaced.
    let mut paid = posting.clone();
    paid.outcome = PaymentOutcome::AlmaError {
        message: "fee is closed".into(),
    };
    paid.updated_at = utc("2024-03-08T10:00:05");
    store.put_payment_record(&paid).await.unwrap();

    let keys = ["k9".to_string(), "k0".into(), "k2".into(), "k1".into()];
    assert_eq!(
        store.payment_records(&keys).await.unwrap(),
        vec![elsewhere.clone(), paid.clone(), earlier.clone()]
    );
    assert_eq!(
        store
            .payment_records_of_fine(&FineId::new("F1"))
            .await
            .unwrap(),
        vec![earlier.clone(), paid.clone()]
    );
    let other = payment(
        "k0",
        Some("F0"),
        PaymentOutcome::Paid,
        "2024-03-09T10:00:00",
    );
    store.put_payment_record(&other).await.unwrap();
    assert_eq!(
        store
            .payment_records_of_fines(&ids(&["F1", "F404", "F0", "F1"]))
            .await
            .unwrap(),
        vec![other, earlier, paid],
        "by fine id, then oldest first; each once"
    );
    assert_eq!(store.dump().await.unwrap().payments.len(), 4);
}

async fn jobs_are_numbered_and_found_by_status(store: &dyn FineStore) {
    let first = store
        .start_job(JobKind::AlmaImport, utc("2024-03-04T01:00:00"))
        .await
        .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.status, JobStatus::InProgress);
    assert_eq!(first.started_at, utc("2024-03-04T01:00:00"));
    assert_eq!(
        (first.finished_at, first.counts.len(), first.error.clone()),
        (None, 0, None)
    );
    let second = store
        .start_job(JobKind::AlmaImport, utc("2024-03-05T01:00:00"))
        .await
        .unwrap();
    let third = store
        .start_job(JobKind::BursExport, utc("2024-03-05T02:00:00"))
        .await
        .unwrap();
    assert_eq!((second.seq, third.seq), (2, 3));
    assert_eq!(
        store
            .last_successful_job(JobKind::AlmaImport)
            .await
            .unwrap(),
        None
    );

    let mut done = first.clone();
    done.status = JobStatus::Success;
    done.finished_at = Some(utc("2024-03-04T01:05:00"));
    done.counts = vec![("fines_new".into(), 3)];
    store.finish_job(&done).await.unwrap();
    let mut failed = second.clone();
    failed.status = JobStatus::Failed;
    failed.error = Some("Alma answered 500".into());
    store.finish_job(&failed).await.unwrap();
    assert_eq!(
        store
            .last_successful_job(JobKind::AlmaImport)
            .await
            .unwrap(),
        Some(done.clone())
    );
    assert_eq!(
        store
            .last_successful_job(JobKind::BursExport)
            .await
            .unwrap(),
        None
    );

    let mut later = second.clone();
    later.status = JobStatus::Success;
    store.finish_job(&later).await.unwrap();
    assert_eq!(
        store
            .last_successful_job(JobKind::AlmaImport)
            .await
            .unwrap(),
        Some(later.clone())
    );
    assert_eq!(
        store.dump().await.unwrap().jobs,
        vec![done, later, third.clone()]
    );
    let fourth = store
        .start_job(JobKind::Backup, utc("2024-03-06T01:00:00"))
        .await
        .unwrap();
    assert_eq!(fourth.seq, 4);
    assert_eq!(
        store.jobs_in_progress().await.unwrap(),
        vec![third, fourth],
        "the unfinished ones, oldest first"
    );
}

/// A store with something in every collection.
async fn fill(store: &dyn FineStore) {
    store.apply(sample()).await.unwrap();
    store.commit_export(&commit_all(1)).await.unwrap();
    store
        .put_payment_record(&payment(
            "k1",
            Some("F1"),
            PaymentOutcome::Paid,
            "2024-03-08T10:00:00",
        ))
        .await
        .unwrap();
    let job = store
        .start_job(JobKind::BursExport, utc("2024-03-04T01:00:00"))
        .await
        .unwrap();
    store.finish_job(&job).await.unwrap();
}

async fn dump_is_ordered_and_load_replaces_everything(store: &dyn FineStore) {
    fill(store).await;
    let dump = store.dump().await.unwrap();
    let keys = |v: Vec<String>| {
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(v, sorted, "dump ordered by natural key");
    };
    keys(dump.patrons.iter().map(|r| r.id.0.to_string()).collect());
    keys(dump.fines.iter().map(|r| r.id.0.to_string()).collect());
    keys(dump.alma_transactions.iter().map(|r| r.key()).collect());
    assert_eq!(
        dump.fines.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["F1", "F10", "F2"]
    );
    assert_eq!(
        dump.bursar_transactions
            .iter()
            .map(|t| (t.reference.as_str(), t.n))
            .collect::<Vec<_>>(),
        [("F1", 1), ("F1", 2), ("F2", 1)]
    );
    assert_eq!(dump.exports, vec![export(1, None)]);
    assert_eq!(dump.account_lines, commit_all(1).billed_lines);

    // Load replaces everything: records absent from the dump are gone.
    let other = StoreDump {
        patrons: vec![patron("P7", 100)],
        fines: vec![fine("F7", "P7", None, 100)],
        alma_transactions: vec![alma(
            Some("T7"),
            "F7",
            AlmaTxnType::Fine,
            100,
            "2024-03-01T09:00:00",
        )],
        account_lines: vec![line("F7", "P7", Some(billing("2024-03-03")))],
        bursar_transactions: vec![bursar(
            "F7",
            1,
            BursarTxnType::Fine,
            100,
            ExportState::Exported(5),
        )],
        exports: vec![export(5, Some("2024-03-09T00:00:00"))],
        payments: vec![payment(
            "k7",
            Some("F7"),
            PaymentOutcome::ZeroDollarCharge,
            "2024-03-08T10:00:00",
        )],
        jobs: vec![job(9, JobKind::Backup, JobStatus::Success)],
    };
    store.load(&other).await.unwrap();
    assert_eq!(store.dump().await.unwrap(), other);
    assert_eq!(
        store.last_export().await.unwrap(),
        Some(export(5, Some("2024-03-09T00:00:00")))
    );
    assert_eq!(store.ledgers(&ids(&["F1"])).await.unwrap(), vec![]);
    assert_eq!(
        store
            .start_job(JobKind::AlmaImport, utc("2024-03-10T00:00:00"))
            .await
            .unwrap()
            .seq,
        10
    );

    // dump -> load -> dump is the identity.
    store.load(&dump).await.unwrap();
    assert_eq!(store.dump().await.unwrap(), dump);
    store.load(&StoreDump::default()).await.unwrap();
    assert_eq!(store.dump().await.unwrap(), StoreDump::default());
}

async fn load_with_a_duplicate_changes_nothing(store: &dyn FineStore) {
    fill(store).await;
    let before = store.dump().await.unwrap();
    let mut broken = before.clone();
    broken.fines.push(fine("F7", "P1", None, 100));
    broken.payments.push(broken.payments[0].clone());
    assert_conflict(store.load(&broken).await, "payment record k1");
    assert_eq!(store.dump().await.unwrap(), before);
}
