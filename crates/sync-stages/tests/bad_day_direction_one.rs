#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Direction 1 on Alma's and the network's bad days. Each case checks the
//! error a person sees, that the failed run wrote nothing it should not
//! have, and that once the fault clears the day ends exactly as a clean
//! run does: same files at the Bursar, same store.

mod common;

use std::time::Duration;

use alma_sim::Fault;
use common::*;
use fine_store::StoreDump;
use sftp_transport::{SftpAuth, SftpConfig, SftpDir};
use sync_core::records::{JobKind, JobStatus};
use sync_core::rules::payments::DeskPaymentPolicy;

fn status(status: u16, code: &str, message: &str) -> Fault {
    Fault::Status {
        status,
        code: code.into(),
        message: message.into(),
    }
}

/// Day 1 on a rig whose simulated Alma answers the first report requests
/// with `faults`: the import must fail with a message containing every
/// one of `expected`, write nothing, and a clean re-run must end as a day
/// that never saw the fault.
async fn import_fails_cleanly_then_recovers(faults: Vec<Fault>, expected: &[&str]) {
    let clean = Rig::new(DeskPaymentPolicy::Report).await;
    clean.day("day1", at(DAY1)).await;

    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.serve("day1");
    rig.sim.inject_report_faults(faults);
    let error = rig.import(at(DAY1)).await.unwrap_err().to_string();
    for part in expected {
        assert!(error.contains(part), "{part:?} not in: {error}");
    }
    assert_eq!(
        rig.records().await,
        StoreDump::default(),
        "a failed import writes nothing"
    );
    let jobs = rig.store.dump().await.unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].kind, jobs[0].status),
        (JobKind::AlmaImport, JobStatus::Failed)
    );
    assert_eq!(jobs[0].error.as_deref(), Some(error.as_str()));

    rig.day("day1", at(DAY1)).await;
    assert_eq!(rig.files("bursar"), clean.files("bursar"));
    assert_eq!(rig.records().await, clean.records().await);
}

/// A fault the client rides out: the day ends as a clean one, first time.
async fn import_rides_out(faults: Vec<Fault>) {
    let clean = Rig::new(DeskPaymentPolicy::Report).await;
    clean.day("day1", at(DAY1)).await;
    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.sim.inject_report_faults(faults);
    rig.day("day1", at(DAY1)).await;
    assert_eq!(rig.files("bursar"), clean.files("bursar"));
    assert_eq!(rig.records().await, clean.records().await);
}

#[tokio::test]
async fn alma_500s_past_the_retries_fail_the_import_and_lose_nothing() {
    let error = || status(500, "INTERNAL_SERVER_ERROR", "Internal server error.");
    import_fails_cleanly_then_recovers(vec![error(), error()], &["All Transactions", "500"]).await;
}

#[tokio::test]
async fn one_alma_500_is_retried() {
    import_rides_out(vec![status(
        500,
        "INTERNAL_SERVER_ERROR",
        "Internal server error.",
    )])
    .await;
}

#[tokio::test]
async fn a_per_second_429_is_waited_out() {
    import_rides_out(vec![status(
        429,
        "PER_SECOND_THRESHOLD",
        "HTTP requests are more than allowed per second",
    )])
    .await;
}

#[tokio::test]
async fn the_daily_limit_stops_the_import_without_looping() {
    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.serve("day1");
    rig.sim.inject_report_faults(vec![status(
        429,
        "DAILY_THRESHOLD",
        "Daily API request limit reached",
    )]);
    let error = rig.import(at(DAY1)).await.unwrap_err().to_string();
    assert!(error.contains("DAILY_THRESHOLD"), "{error}");
    assert_eq!(
        rig.sim.request_count().await,
        1,
        "a daily limit is not retried"
    );
    assert_eq!(rig.records().await, StoreDump::default());
}

#[tokio::test]
async fn alma_timeouts_fail_the_import_and_lose_nothing() {
    let slow = || Fault::Delay(Duration::from_secs(3));
    import_fails_cleanly_then_recovers(vec![slow(), slow()], &["All Transactions"]).await;
}

#[tokio::test]
async fn a_page_cut_off_mid_xml_fails_the_import_and_loses_nothing() {
    // Not retried: a cut page fails the fetch at once.
    import_fails_cleanly_then_recovers(vec![Fault::Truncated], &["All Transactions", "page 1"])
        .await;
}

#[tokio::test]
async fn a_page_of_malformed_xml_fails_the_import_and_loses_nothing() {
    // A whole answer, not cut, that is not XML: not retried either.
    import_fails_cleanly_then_recovers(
        vec![Fault::Malformed],
        &["All Transactions", "page 1", "XML error", "Column2"],
    )
    .await;
}

#[tokio::test]
async fn a_report_that_stays_in_preparation_fails_the_import() {
    import_fails_cleanly_then_recovers(vec![Fault::StillPreparing; 2], &["All Transactions"]).await;
}

#[tokio::test]
async fn analytics_down_fails_the_import_and_loses_nothing() {
    // Not retried: ALMA-API.md says fail the stage and try again later.
    import_fails_cleanly_then_recovers(vec![Fault::NoReport], &["All Transactions", "unavailable"])
        .await;
}

#[tokio::test]
async fn a_wrong_report_path_is_named() {
    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    let error = rig.import(at(DAY1)).await.unwrap_err().to_string();
    assert!(error.contains("Path not found"), "{error}");
    assert!(error.contains(TRANSACTIONS), "{error}");
}

/// The SFTP test server's settings with `change` applied; the connection
/// must fail with a message containing `expected`, the export must stay
/// unsent, and the real server then completes the send.
async fn sftp_fault(change: impl FnOnce(&mut SftpConfig), expected: &str) {
    let Some(good) = sftp_config() else { return };
    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.serve("day1");
    rig.import(at(DAY1)).await.unwrap();
    rig.export(at(DAY1)).await.unwrap();

    let mut bad = good.clone();
    bad.connect_timeout = Duration::from_secs(5);
    change(&mut bad);
    let Err(error) = SftpDir::connect(&bad) else {
        panic!("the faulty connection must fail");
    };
    let error = error.to_string();
    assert!(error.contains(expected), "{expected:?} not in: {error}");
    assert_eq!(
        rig.store.unsent_exports().await.unwrap().len(),
        1,
        "nothing was marked sent"
    );

    let bursar = SftpDir::connect(&good).unwrap();
    let targets = sync_stages::send::SendTargets {
        bursar: &bursar,
        remote_archive: None,
        local_archive: None,
    };
    let (_, sent) =
        sync_stages::send::run_send(rig.store.as_ref(), &rig.export, &targets, at(DAY1))
            .await
            .unwrap();
    assert_eq!(sent.files_uploaded, vec!["LIB_charges.dat.20241210.1.1"]);
    assert!(rig.store.unsent_exports().await.unwrap().is_empty());
}

#[tokio::test]
async fn sftp_refused_is_named_and_the_export_waits() {
    sftp_fault(|config| config.port = 1, "127.0.0.1:1").await;
}

#[tokio::test]
async fn sftp_auth_failure_is_named_and_the_export_waits() {
    sftp_fault(
        |config| config.auth = SftpAuth::Password("not-the-password".into()),
        "sftptest",
    )
    .await;
}

#[tokio::test]
async fn a_changed_host_key_is_refused_and_the_export_waits() {
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    // A well-formed ed25519 key that is not the server's.
    std::fs::write(
        &known_hosts,
        "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
    )
    .unwrap();
    sftp_fault(
        |config| config.known_hosts = known_hosts.clone(),
        "known_hosts",
    )
    .await;
}

#[tokio::test]
async fn a_full_exports_disk_fails_the_export_and_the_rerun_completes_it() {
    let clean = Rig::new(DeskPaymentPolicy::Report).await;
    clean.day("day1", at(DAY1)).await;

    let mut rig = Rig::new(DeskPaymentPolicy::Report).await;
    let Some(disk) = SmallDisk::mount(rig.root.join("small-disk"), "16k") else {
        return;
    };
    rig.export.exports_dir = disk.dir.join("exports");
    std::fs::create_dir_all(&rig.export.exports_dir).unwrap();
    disk.fill();

    rig.serve("day1");
    rig.import(at(DAY1)).await.unwrap();
    let error = rig.export(at(DAY1)).await.unwrap_err().to_string();
    assert!(
        error.contains("exports"),
        "the error names the folder: {error}"
    );
    assert!(
        std::fs::read_dir(&rig.export.exports_dir)
            .unwrap()
            .all(|e| { e.unwrap().file_name().to_string_lossy().starts_with('.') })
            || std::fs::read_dir(&rig.export.exports_dir).unwrap().count() == 0
    );

    disk.free();
    rig.day("day1", at(DAY1)).await;
    assert_eq!(rig.files("bursar"), clean.files("bursar"));
    assert_eq!(rig.records().await, clean.records().await);
}

/// Analytics answering an empty report on a day the store holds fines (a
/// failed nightly copy, say): the import merges nothing and deletes
/// nothing, the export finds nothing to send, and the next good day ends
/// exactly as if the empty day never happened.
#[tokio::test]
async fn an_empty_report_when_data_exists_changes_and_sends_nothing() {
    let clean = Rig::new(DeskPaymentPolicy::Report).await;
    clean.day("day1", at(DAY1)).await;
    clean.day("day2", at(DAY2)).await;

    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.day("day1", at(DAY1)).await;
    let before = rig.records().await;
    for (path, headings) in [
        (FINES, vec!["Fine Fee Id", "Primary Identifier"]),
        (TRANSACTIONS, vec!["Fine Fee Id", "Fine Fee Transaction Id"]),
        (BALANCES, vec!["Primary Identifier", "Remaining Amount"]),
    ] {
        rig.sim
            .serve_report(path, alma_sim::ReportTable::new(&headings), 5);
    }
    let empty_day = at("2024-12-20T12:00:00");
    let import = rig.import(empty_day).await.unwrap();
    assert_eq!(
        (
            import.rows_fines,
            import.rows_transactions,
            import.rows_balances
        ),
        (0, 0, 0)
    );
    let export = rig.export(empty_day).await.unwrap();
    assert_eq!(export.export, None);
    rig.send(empty_day).await.unwrap();
    assert_eq!(
        rig.records().await,
        before,
        "an empty report deletes nothing"
    );

    rig.day("day2", at(DAY2)).await;
    assert_eq!(rig.files("bursar"), clean.files("bursar"));
    assert_eq!(rig.records().await, clean.records().await);
}
