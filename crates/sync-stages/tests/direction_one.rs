#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Direction 1 end to end: the simulated Alma serving the scenario of
//! `fixtures/scenarios/direction1`, the real embedded store, and a Bursar
//! drop folder (local here; over the real SFTP server in one test). Every
//! test checks the exact files the Bursar receives and what the store
//! holds.

mod common;

use chrono::NaiveDateTime;
use common::*;
use fine_store::StoreDump;
use sftp_transport::{IfMissing, RemoteDir};
use sync_core::Money;
use sync_core::records::{BursarTxnType, ExportState, FineId, JobKind, JobStatus};
use sync_core::rules::payments::DeskPaymentPolicy;
use sync_stages::send::{SendTargets, plan_send, run_send};

#[tokio::test]
async fn two_days_of_the_scenario_send_exactly_the_expected_files() {
    two_days(Rig::new(DeskPaymentPolicy::Report).await).await;
}

#[tokio::test]
async fn two_days_of_the_scenario_on_mongodb() {
    let Some(uri) = mongodb_uri() else { return };
    two_days(Rig::on_mongodb(DeskPaymentPolicy::Report, uri).await).await;
}

async fn two_days(rig: Rig) {
    rig.serve("day1");
    let import = rig.import(at(DAY1)).await.unwrap();
    assert_eq!(import.since, None, "the first import is a full sweep");
    assert_eq!(
        (
            import.counts.fines_new,
            import.counts.fines_ignored,
            import.counts.credits_unmatched
        ),
        (8, 1, 1)
    );
    let problems: Vec<String> = import.problems.iter().map(|p| p.subject.clone()).collect();
    assert_eq!(problems, vec!["2200000011"]);

    let export = rig.export(at(DAY1)).await.unwrap();
    let first = export.export.clone().unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(
        first.charges_file.as_deref(),
        Some("LIB_charges.dat.20241210.1.1")
    );
    assert_eq!(first.reversals_file, None);
    assert_eq!((export.charges, export.nothing_to_send), (6, 1));
    assert_eq!(export.problems.len(), 1);
    assert_eq!(
        export.problems[0].to_string(),
        "2200000009: quarantined: Alma transactions sum to 15.00, more than the original amount 10.00; its transactions stay pending and it is retried on every run"
    );

    let dry = plan_send(rig.store.as_ref()).await.unwrap();
    assert_eq!(
        (dry.exports.clone(), dry.charge_lines, dry.reversal_lines),
        (vec![1], 6, 0)
    );
    let sent = rig.send(at(DAY1)).await.unwrap();
    assert_eq!(sent.files_uploaded, vec!["LIB_charges.dat.20241210.1.1"]);

    let day1 = vec![("LIB_charges.dat.20241210.1.1".to_string(), day1_charges())];
    assert_eq!(rig.files("bursar"), day1);
    assert_eq!(rig.files("archive"), day1);
    assert_eq!(rig.files("remote-archive"), day1);

    rig.serve("day2");
    let import = rig.import(at(DAY2)).await.unwrap();
    assert_eq!(
        import.since,
        Some(NaiveDateTime::parse_from_str("2024-12-03T12:00:00", "%Y-%m-%dT%H:%M:%S").unwrap())
    );
    assert_eq!(
        (
            import.counts.credits_split,
            import.counts.payments_to_ledger,
            import.counts.desk_payments_on_billed_fines
        ),
        (1, 2, 1)
    );
    let export = rig.export(at(DAY2)).await.unwrap();
    assert_eq!(export.export.as_ref().unwrap().charges_file, None);
    rig.send(at(DAY2)).await.unwrap();
    let mut both = day1.clone();
    both.push((
        "LIB_charges.dat.20250106.2.2".to_string(),
        day2_reversals(false),
    ));
    assert_eq!(rig.files("bursar"), both);
    assert_eq!(rig.files("exports"), both);

    // The Bursar payment and the desk payment are on the ledger, not sent.
    let ledgers = rig
        .store
        .ledgers(&[FineId::new("2200000001"), FineId::new("2200000006")])
        .await
        .unwrap();
    for ledger in &ledgers {
        let kinds: Vec<(BursarTxnType, Money, ExportState)> = ledger
            .bursar
            .iter()
            .map(|t| (t.kind, t.amount, t.export))
            .collect();
        let charge = ledger.fine.original_amount;
        assert_eq!(
            kinds,
            vec![
                (BursarTxnType::Fine, charge, ExportState::Exported(1)),
                (BursarTxnType::Payment, -charge, ExportState::NotExported)
            ]
        );
        assert!(ledger.alma.iter().all(|t| !t.pending));
    }
    let exports = rig.store.unsent_exports().await.unwrap();
    assert!(exports.is_empty());
    assert_eq!(
        rig.store.last_export().await.unwrap().unwrap().sent_at,
        Some(at(DAY2))
    );
}

#[tokio::test]
async fn a_desk_payment_on_a_billed_fine_is_reversed_when_the_setting_asks() {
    let rig = Rig::new(DeskPaymentPolicy::Reverse).await;
    rig.day("day1", at(DAY1)).await;
    rig.day("day2", at(DAY2)).await;
    assert_eq!(
        rig.files("bursar")[1],
        (
            "LIB_charges.dat.20250106.2.2".to_string(),
            day2_reversals(true)
        )
    );
}

#[tokio::test]
async fn a_run_with_no_new_alma_data_sends_nothing() {
    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.day("day1", at(DAY1)).await;
    let before = rig.records().await;
    let import = rig.import(at("2024-12-11T12:00:00")).await.unwrap();
    assert_eq!(
        (
            import.counts.fines_new,
            import.counts.fines_updated,
            import.counts.transactions_new
        ),
        (0, 0, 0)
    );
    assert_eq!(import.counts.fines_unchanged, 8);
    let export = rig.export(at("2024-12-11T12:00:00")).await.unwrap();
    assert_eq!(export.export, None, "no new export");
    assert_eq!(
        export.problems.len(),
        1,
        "the quarantined fine is reported again"
    );
    let sent = rig.send(at("2024-12-11T12:00:00")).await.unwrap();
    assert!(sent.files_uploaded.is_empty() && sent.exports.is_empty());
    assert_eq!(rig.files("bursar").len(), 1);
    assert_eq!(rig.records().await, before, "nothing in the store changed");
}

#[tokio::test]
async fn steps_run_out_of_order_find_nothing_to_do() {
    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    let sent = rig.send(at(DAY1)).await.unwrap();
    assert!(sent.exports.is_empty());
    let export = rig.export(at(DAY1)).await.unwrap();
    assert_eq!(export.export, None);
    assert!(rig.files("exports").is_empty());
}

#[tokio::test]
async fn a_failed_report_fetch_writes_nothing_and_fails_the_job() {
    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.serve("day1");
    rig.sim.serve_report(
        BALANCES,
        alma_sim::ReportTable::new(&["Primary Identifier", "Remaining Amount"]),
        5,
    );
    let mut broken = alma_sim::ReportTable::new(&["Primary Identifier", "Remaining Amount"]);
    broken.push(&["1000001", "12.345"]);
    rig.sim.serve_report(BALANCES, broken, 5);
    let error = rig.import(at(DAY1)).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("12.345") && message.contains("Remaining Amount"),
        "{message}"
    );
    assert_eq!(rig.records().await, StoreDump::default());
    let dump = rig.store.dump().await.unwrap();
    assert_eq!(dump.jobs.len(), 1);
    assert_eq!(
        (dump.jobs[0].kind, dump.jobs[0].status),
        (JobKind::AlmaImport, JobStatus::Failed)
    );
}

#[tokio::test]
async fn send_over_the_real_sftp_server() {
    let Some(config) = sftp_config() else { return };
    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.serve("day1");
    rig.import(at(DAY1)).await.unwrap();
    rig.export(at(DAY1)).await.unwrap();
    let bursar = sftp_transport::SftpDir::connect(&config).unwrap();
    let archive = bursar
        .open_folder(&format!("{}/archive", config.folder), IfMissing::Create)
        .unwrap();
    let targets = SendTargets {
        bursar: &bursar,
        remote_archive: Some(&archive),
        local_archive: None,
    };
    let (_, sent) = run_send(rig.store.as_ref(), &rig.export, &targets, at(DAY1))
        .await
        .unwrap();
    assert_eq!(sent.files_uploaded, vec!["LIB_charges.dat.20241210.1.1"]);
    assert_eq!(
        String::from_utf8(bursar.read("LIB_charges.dat.20241210.1.1").unwrap()).unwrap(),
        day1_charges()
    );
    assert_eq!(
        String::from_utf8(archive.read("LIB_charges.dat.20241210.1.1").unwrap()).unwrap(),
        day1_charges()
    );
    let names: Vec<String> = bursar.list().unwrap().into_iter().map(|f| f.name).collect();
    assert_eq!(names, vec!["LIB_charges.dat.20241210.1.1"]);
}
