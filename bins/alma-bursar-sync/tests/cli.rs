#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The operator CLI driven as a person (or cron) drives it: the binary,
//! its exit status and its exact output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{abs, stderr, stdout};

const NOW: &str = "2024-12-09T06:00:00Z";

/// `rehearse --dir` in a fresh folder; returns the folder and the config.
/// A one-day rehearsal: the exact outputs below are those of day 1.
fn rehearsal() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let output = abs()
        .args(["rehearse", "--days", "1", "--now", NOW, "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "rehearse failed:\n{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let config = dir.path().join("alma-bursar-sync.toml");
    (dir, config)
}

fn run(config: &Path, args: &[&str]) -> Output {
    abs()
        .arg("--config")
        .arg(config)
        .args(["--now", NOW])
        .args(args)
        .output()
        .unwrap()
}

fn ok(config: &Path, args: &[&str]) -> String {
    let output = run(config, args);
    assert!(
        output.status.success(),
        "{args:?} failed ({:?}):\n{}\n{}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

const LOOKUP_2200000001: &str = "\
Fine 2200000001 (Overdue fine), open in Alma
  Patron:     1000001, Alma balance 15.00
  Loan:       L1
  Amounts:    original 15.00, remaining 15.00
  Dates:      created 2024-12-01 10:00:00, status 2024-12-01 10:00:00
  Item:       Structure and interpretation of computer programs / Abelson, Harold
              call number QA76.6 .A255 1996, barcode 39031031234567, location main
              loaned 2024-10-01 09:15:00, due 2024-11-01 23:59:00, returned 2024-12-01 09:58:12
  Alma transactions (1):
    T1001        Fine         15.00  2024-12-01 10:00:03  reconciled
    sum in Alma 15.00
  Bursar ledger:
    line 2200000001, account 531000000002, billed 2024-12-09, due 2025-01-25, term 2247
       1 Fine         15.00  2024-12-09 06:00:00 UTC  exported in 1
    owed at the Bursar 15.00
  Export history (1):
    export 1 of 2024-12-09: charges LIB_charges.dat.20241209.1.1, reversals -; sent 2024-12-09 06:00:00 UTC
  Bursar payments (1):
    paid 15.00 at the Bursar by 1000001: Paid, posted 15.00, 2024-12-09 06:00:00 UTC
";

const LAST_EXPORT: &str = "\
Export 1
  Created:        2024-12-09 06:00:00 UTC
  Billing date:   2024-12-09
  Charges file:   LIB_charges.dat.20241209.1.1
  Reversals file: -
  Lines:          6 (6 charges totalling 130.00, 0 reversals totalling 0.00)
  Sent:           2024-12-09 06:00:00 UTC
  Transactions:
    1000001     531000000002 2200000001   Fine        15.00
    1000002     531000000001 2200000002   Fine        65.00
    1000002     531000000002 2200000003   Fine        10.00
    1000003     531000000002 2200000004   Fine        20.00
    1000005     531000000002 2200000006   Fine         8.00
    1000006     531000000005 2200000007   Fine        12.00
";

#[test]
fn rehearsal_runs_today_and_says_where_everything_is() {
    let dir = tempfile::tempdir().unwrap();
    let output = abs()
        .args(["rehearse", "--now", NOW, "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let d = dir.path().display();
    for expected in [
        format!("Rehearsal in {d}\n"),
        "- import-alma-fines ok: rows fines 10, rows transactions 3, rows balances 8, patrons new 8, fines new 8, fines ignored 1, transactions new 2, credits unmatched 1, payments left pending 1\n".to_string(),
        "- export-burs ok: export 1, lines 6, fines charged 6, fines nothing to send 1, fines quarantined 1; files LIB_charges.dat.20241209.1.1\n".to_string(),
        format!("- sftp-to-burs ok: exports 1, charge lines 6, files uploaded 1; sent LIB_charges.dat.20241209.1.1 to {d}/bursar-drop\n"),
        "- import-alma-payments ok: ASUSASF_LIBRARY_REPORT_DTRANGE_20241209.csv: rows 5, paid 2, zero dollar payments 1, not found 1, patron mismatches 1\n".to_string(),
        "The simulated Alma received 2 payment(s):\n  fee 2200000001 of 1000001: ONLINE 15.00 (Paid to bursar on 2024-12-08, imported into Alma via alma-bursar-sync on 2024-12-09.)\n  fee 2200000002 of 1000002: ONLINE 30.00 (Paid to bursar on 2024-12-08, imported into Alma via alma-bursar-sync on 2024-12-09.)\n".to_string(),
        format!("  charge/reversal    {d}/exports\n                       LIB_charges.dat.20241209.1.1\n"),
        format!("  store              sqlite:{d}/state/alma-bursar-sync.sqlite3\n"),
        format!("  backups            {d}/backups\n                       abs-backup-"),
        format!("  logs               {d}/logs\n                       alma-bursar-sync."),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    // The charge file reached the Bursar's folder, the log its folder.
    let sent = std::fs::read_to_string(dir.path().join("bursar-drop/LIB_charges.dat.20241209.1.1"))
        .unwrap();
    assert_eq!(sent.lines().count(), 6);
    assert!(sent.lines().all(|line| line.len() == 97));
    assert!(
        sent.starts_with("1000001     531000000002      15.00 01252025  12092024  2247      2200000001                     \n")
    );
    // Day 2 reversed a waive and a split credit, with day 1's term code.
    let reversals =
        std::fs::read_to_string(dir.path().join("bursar-drop/LIB_charges.dat.20241209.2.2"))
            .unwrap();
    assert_eq!(
        reversals,
        "1000002     531000000001      65.00                     2247  Y   2200000002                     \n\
         1000002     531000000002       5.00                     2247  Y   2200000003                     \n\
         1000003     531000000002      20.00                     2247  Y   2200000004                     \n"
    );
    assert!(out.contains("- export-burs ok: export 2, lines 3, fines reversed 3, fines quarantined 1; files LIB_charges.dat.20241209.2.2\n"), "{out}");
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .collect();
    assert_eq!(logs.len(), 1);
}

#[test]
fn every_command_works_on_the_rehearsal() {
    let (_dir, config) = rehearsal();

    assert_eq!(
        ok(
            &config,
            &["lookup-fine", "--root-alma-fine-id", "2200000001"]
        ),
        LOOKUP_2200000001
    );
    // The old spellings.
    assert_eq!(
        ok(&config, &["lookupFine", "--rootAlmaFineId", "2200000001"]),
        LOOKUP_2200000001
    );
    let by_loan = ok(&config, &["lookup-fine", "--almaLoanId", "L2"]);
    assert!(by_loan.starts_with("Fine 2200000002 (Lost item replacement fee), open in Alma\n"));
    assert!(by_loan.contains("\nFine 2200000003 (Lost item process fee), open in Alma\n"));

    let json: serde_json::Value = serde_json::from_str(&ok(
        &config,
        &["lookup-fine", "--root-alma-fine-id", "2200000001", "--json"],
    ))
    .unwrap();
    let fine = &json["fines"][0];
    assert_eq!(fine["fine"]["id"], "2200000001");
    assert_eq!(fine["patron"]["balance"], "15.00");
    assert_eq!(fine["alma_transactions"][0]["id"], "T1001");
    assert_eq!(fine["bursar_transactions"][0]["export"]["Exported"], 1);
    assert_eq!(
        fine["exports"][0]["charges_file"],
        "LIB_charges.dat.20241209.1.1"
    );
    assert_eq!(fine["payment_records"][0]["amount_posted"], "15.00");

    assert_eq!(ok(&config, &["print-last-export"]), LAST_EXPORT);
    assert_eq!(ok(&config, &["printLastExport"]), LAST_EXPORT);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&config, &["print-last-export", "--json"])).unwrap();
    assert_eq!(json["export"]["seq"], 1);
    assert_eq!(json["export"]["line_count"], 6);
    assert_eq!(json["export"]["sent_at"], "2024-12-09T06:00:00Z");
    assert_eq!(json["items"].as_array().unwrap().len(), 6);

    let dry_run = "Would send 0 charge(s) and 0 reversal(s) from 0 unsent export(s).\n";
    assert_eq!(ok(&config, &["sftp-to-burs", "--dry-run"]), dry_run);
    assert_eq!(ok(&config, &["sftpToBurs", "--dry-run"]), dry_run);

    // The steps one by one: all already done, so nothing new.
    let out = ok(&config, &["import-alma-fines"]);
    assert!(
        out.contains("- import-alma-fines ok: rows fines 10"),
        "{out}"
    );
    let out = ok(&config, &["exportBurs"]);
    assert!(
        out.contains("- export-burs ok: fines quarantined 1\n"),
        "{out}"
    );
    let out = ok(&config, &["sftp-to-burs"]);
    assert!(out.contains("- sftp-to-burs ok: nothing to do\n"), "{out}");
    let out = ok(&config, &["importAlmaPayments"]);
    assert!(
        out.contains("rows 5, already processed 3, not found 1, patron mismatches 1"),
        "{out}"
    );
    let out = ok(&config, &["payFines"]);
    assert!(out.starts_with("alma-bursar-sync pay-fines on "), "{out}");
    assert!(out.contains("\n- backup-db ok: "), "{out}");
    let out = ok(&config, &["today"]);
    assert!(out.contains(": done\n- import-alma-fines ok"), "{out}");

    let out = ok(&config, &["backupDB"]);
    assert!(out.contains("- backup-db ok: "), "{out}");
    let out = ok(&config, &["restore-last"]);
    assert!(out.starts_with("Restored "), "{out}");
    assert!(
        out.contains("The state before the restore is saved in "),
        "{out}"
    );
    let out = ok(&config, &["restoreLast"]);
    assert!(out.starts_with("Restored "), "{out}");
    let out = ok(&config, &["restore-choose", "--pick", "1"]);
    assert!(out.starts_with(" 1) "), "{out}");
    assert!(out.contains("\nRestored "), "{out}");
    let out = ok(&config, &["restoreChoose", "--pick", "2"]);
    assert!(out.contains("\nRestored "), "{out}");

    // The restored store still answers, and the restore is recorded.
    assert_eq!(ok(&config, &["print-last-export"]), LAST_EXPORT);

    let output = run(&config, &["restore-choose", "--pick", "9"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("error: "), "{}", stderr(&output));
}

#[test]
fn a_restore_is_recorded_after_the_load() {
    let (dir, config) = rehearsal();
    ok(&config, &["restore-last"]);
    let backups = dir.path().join("backups");
    // The safety backup of the state before the restore holds its jobs;
    // a new backup holds the Restore job too.
    ok(&config, &["backup-db"]);
    let listing = ok(&config, &["restore-choose", "--pick", "1"]);
    let counts: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("    patrons"))
        .collect();
    // Newest first: the backup taken after the restore (the rehearsal's 4
    // jobs and the Restore job), the safety copy taken before the restore,
    // and the rehearsal's own backup (4 jobs: it was taken before its
    // Backup job was recorded).
    assert_eq!(counts.len(), 3, "{listing}");
    assert!(counts[0].ends_with(", jobs 5"), "{listing}");
    assert!(counts[2].ends_with(", jobs 4"), "{listing}");
    assert!(backups.join("abs-backup-").parent().unwrap().exists());
}

#[test]
fn interactive_restore_choose_reads_the_answer() {
    let (_dir, config) = rehearsal();
    let output = abs()
        .arg("--config")
        .arg(&config)
        .arg("restore-choose")
        .write_stdin("q\n")
        .output()
        .unwrap();
    assert!(output.status.success());
    let out = stdout(&output);
    assert!(
        out.contains("Restore which backup? Enter 1-1, or q to cancel: "),
        "{out}"
    );
    assert!(out.ends_with("Nothing restored.\n"), "{out}");
}

#[test]
fn lookup_of_an_unknown_fine_fails_with_a_reason() {
    let (dir, config) = rehearsal();
    let output = run(
        &config,
        &["lookup-fine", "--root-alma-fine-id", "2299999999"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).lines().last().unwrap(),
        format!(
            "error: no fine 2299999999 in the store sqlite:{}/state/alma-bursar-sync.sqlite3; the store knows the fines the import has read (import-alma-fines), and ignored fines are never stored",
            dir.path().display()
        )
    );
}

#[test]
fn an_unknown_command_or_option_is_bad_usage() {
    let output = abs().arg("frobnicate").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("error: unrecognized subcommand 'frobnicate'"));
    let output = abs().args(["lookup-fine"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = abs()
        .args([
            "lookup-fine",
            "--root-alma-fine-id",
            "1",
            "--alma-loan-id",
            "L1",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    // A secret on the command line is not an option.
    let output = abs().args(["today", "--api-key", "x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn every_old_name_is_an_alias() {
    for (old, new) in [
        ("payFines", "pay-fines"),
        ("importAlmaFines", "import-alma-fines"),
        ("exportBurs", "export-burs"),
        ("sftpToBurs", "sftp-to-burs"),
        ("importAlmaPayments", "import-alma-payments"),
        ("backupDB", "backup-db"),
        ("restoreLast", "restore-last"),
        ("restoreChoose", "restore-choose"),
        ("lookupFine", "lookup-fine"),
        ("printLastExport", "print-last-export"),
    ] {
        let output = abs().args([old, "--help"]).output().unwrap();
        assert!(output.status.success(), "{old}");
        assert!(
            stdout(&output).contains(&format!("Usage: alma-bursar-sync {new}")),
            "{old}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn help_lists_every_command_with_an_example() {
    let output = abs().arg("help").output().unwrap();
    assert!(output.status.success());
    let out = stdout(&output);
    for (command, example) in [
        ("today", "$ alma-bursar-sync today"),
        ("pay-fines [payFines]", "$ alma-bursar-sync pay-fines"),
        (
            "import-alma-fines [importAlmaFines]",
            "$ alma-bursar-sync import-alma-fines",
        ),
        ("export-burs [exportBurs]", "$ alma-bursar-sync export-burs"),
        (
            "sftp-to-burs [sftpToBurs]",
            "$ alma-bursar-sync sftp-to-burs --dry-run",
        ),
        (
            "import-alma-payments [importAlmaPayments]",
            "$ alma-bursar-sync import-alma-payments",
        ),
        ("backup-db [backupDB]", "$ alma-bursar-sync backup-db"),
        (
            "restore-last [restoreLast]",
            "$ alma-bursar-sync restore-last",
        ),
        (
            "restore-choose [restoreChoose]",
            "$ alma-bursar-sync restore-choose --pick 1",
        ),
        (
            "lookup-fine [lookupFine]",
            "$ alma-bursar-sync lookup-fine --root-alma-fine-id 2200000001",
        ),
        (
            "print-last-export [printLastExport]",
            "$ alma-bursar-sync print-last-export --json",
        ),
        (
            "check-config [checkConfig]",
            "$ alma-bursar-sync check-config",
        ),
        (
            "rehearse",
            "$ alma-bursar-sync rehearse --dir /tmp/abs-rehearsal",
        ),
        ("help", "$ alma-bursar-sync help lookup-fine"),
    ] {
        assert!(
            out.contains(&format!("\n  {command}\n")),
            "{command}:\n{out}"
        );
        assert!(
            out.contains(&format!("      {example}\n")),
            "{example}:\n{out}"
        );
    }
    assert!(out.contains("Exit status: 0 done; 1 a stage or command failed"));
    let output = abs().args(["help", "lookupFine"]).output().unwrap();
    assert!(stdout(&output).contains("--root-alma-fine-id <ID>"));
}

#[test]
fn today_stops_at_the_first_failing_stage_and_names_it() {
    let (dir, config) = rehearsal();
    // The Bursar's folder disappears: the send fails, payments and the
    // backup do not run.
    std::fs::remove_dir_all(dir.path().join("bursar-drop")).unwrap();
    let output = run(&config, &["today"]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.contains(": FAILED\n- import-alma-fines ok: "), "{out}");
    assert!(
        out.contains("\n- sftp-to-burs FAILED: failed\n    error: stage sftp-to-burs failed: "),
        "{out}"
    );
    assert!(!out.contains("import-alma-payments"), "{out}");
    assert!(!out.contains("backup-db"), "{out}");
    assert!(
        stderr(&output).contains("error: stage sftp-to-burs failed: "),
        "{}",
        stderr(&output)
    );
}

/// Every file below `dir`, as paths relative to it.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// A store file that went missing (a changed path, a deleted file) comes
/// back empty: a run on it would bill every open fine again, so stages are
/// refused until the operator says the store is new.
#[test]
fn a_store_that_never_completed_a_run_is_refused_until_said_new() {
    let (dir, config) = rehearsal();
    let state = dir.path().join("state");
    std::fs::remove_dir_all(&state).unwrap();
    let before: Vec<PathBuf> = files_below(dir.path())
        .into_iter()
        .filter(|path| !path.starts_with("state") && !path.starts_with("logs"))
        .collect();

    for command in [
        "today",
        "import-alma-fines",
        "export-burs",
        "pay-fines",
        "backup-db",
    ] {
        let output = run(&config, &[command]);
        assert_eq!(output.status.code(), Some(2), "{command}");
        assert_eq!(
            stderr(&output),
            format!(
                "error: the store sqlite:{d}/state/alma-bursar-sync.sqlite3 has never completed a \
                 run: it is new, or not the store {d}/alma-bursar-sync.toml used before (a changed \
                 path or database name, a deleted file); run on it, every open fine would be billed \
                 again. If it is new, run once with --new-store; if not, correct [store] in \
                 {d}/alma-bursar-sync.toml, or restore a backup (restore-last, restore-choose)\n",
                d = dir.path().display()
            ),
            "{command}"
        );
    }
    let after: Vec<PathBuf> = files_below(dir.path())
        .into_iter()
        .filter(|path| !path.starts_with("state") && !path.starts_with("logs"))
        .collect();
    assert_eq!(
        after, before,
        "nothing was exported, sent, archived or backed up"
    );

    let out = ok(&config, &["--new-store", "import-alma-fines"]);
    assert!(out.contains("- import-alma-fines ok: "), "{out}");
    // Once a stage has completed, the store is in use.
    let out = ok(&config, &["export-burs"]);
    assert!(out.contains("- export-burs ok: "), "{out}");
}

/// Cron and an operator at once: the second run is refused while the first
/// holds the store, reads still work, and once the first has ended the
/// second goes through.
#[test]
fn a_second_run_on_a_store_in_use_is_refused() {
    use std::io::Write;

    let (dir, config) = rehearsal();
    let lock_path = dir.path().join("state/alma-bursar-sync.sqlite3.lock");
    let mut held = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&lock_path)
        .unwrap();
    held.try_lock().unwrap();
    held.write_all(b"today (process 4242), started 2024-12-09T06:00:00Z\n")
        .unwrap();
    let exports_before = files_below(&dir.path().join("exports"));

    for command in ["today", "export-burs", "pay-fines", "restore-last"] {
        let output = run(&config, &[command]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        assert_eq!(
            stderr(&output),
            format!(
                "error: another run is using the store sqlite:{d}/state/alma-bursar-sync.sqlite3: \
                 today (process 4242), started 2024-12-09T06:00:00Z; nothing was done. Run again \
                 once it has ended (its lock is {d}/state/alma-bursar-sync.sqlite3.lock, released \
                 when that process ends)\n",
                d = dir.path().display()
            ),
            "{command}"
        );
    }
    assert_eq!(files_below(&dir.path().join("exports")), exports_before);
    ok(&config, &["print-last-export"]);

    drop(held);
    let out = ok(&config, &["today"]);
    assert!(out.contains("- import-alma-fines ok: "), "{out}");
}

/// A run killed mid-stage leaves its job In Progress; the next run, holding
/// the run lock, knows that run is dead and marks the job failed.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_left_in_progress_by_a_dead_run_is_marked_failed() {
    use fine_store::{FineStore, SqliteStore};
    use sync_core::records::{JobKind, JobStatus};

    let (dir, config) = rehearsal();
    let store_path = dir.path().join("state/alma-bursar-sync.sqlite3");
    let killed_at = chrono::DateTime::parse_from_rfc3339("2024-12-09T05:00:00Z")
        .unwrap()
        .to_utc();
    let dead = {
        let store = SqliteStore::open(&store_path).unwrap();
        store
            .start_job(JobKind::BursExport, killed_at)
            .await
            .unwrap()
    };

    ok(&config, &["export-burs"]);

    let store = SqliteStore::open(&store_path).unwrap();
    assert!(store.jobs_in_progress().await.unwrap().is_empty());
    let settled = store
        .dump()
        .await
        .unwrap()
        .jobs
        .into_iter()
        .find(|job| job.seq == dead.seq)
        .unwrap();
    assert_eq!(settled.status, JobStatus::Failed);
    assert_eq!(
        settled.error.as_deref(),
        Some(
            "the run that started this job ended without recording its end (it was killed, or \
             the store went away); whatever it left undone is done by the next run of the stage"
        )
    );
    assert_eq!(
        settled.finished_at.map(|at| at.to_rfc3339()),
        Some("2024-12-09T06:00:00+00:00".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_summary_is_posted_to_the_webhook() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/abs"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(2)
        .mount(&server)
        .await;
    let (_dir, config) = tokio::task::spawn_blocking(rehearsal).await.unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[notify]\nwebhook_url = \"{}/hooks/abs\"\n",
            server.uri()
        ),
    )
    .unwrap();
    let config2 = config.clone();
    let out = tokio::task::spawn_blocking(move || ok(&config2, &["pay-fines"]))
        .await
        .unwrap();
    let config3 = config.clone();
    tokio::task::spawn_blocking(move || ok(&config3, &["backup-db"]))
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    let posted = body["text"].as_str().unwrap();
    // The webhook gets exactly what the console printed.
    assert_eq!(format!("{posted}\n"), out);
    assert!(
        posted.starts_with("alma-bursar-sync pay-fines on "),
        "{posted}"
    );
    assert!(
        posted.contains(": done\n- import-alma-payments ok: "),
        "{posted}"
    );
    assert!(
        posted.contains("\n    problem: line 5: reference 2299999999"),
        "{posted}"
    );
    assert!(posted.contains("\n- backup-db ok: "), "{posted}");
    assert_eq!(body.as_object().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_webhook_does_not_fail_the_run() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let (_dir, config) = tokio::task::spawn_blocking(rehearsal).await.unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[notify]\nwebhook_url = \"{}/hook\"\n",
            server.uri()
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || run(&config, &["backup-db"]))
        .await
        .unwrap();
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("the run summary could not be posted"),
        "{}",
        stderr(&output)
    );
}
