//! `abs-bench direction1`: import, export (files rendered), a no-change
//! re-run, and day 2 (new fines, reversals of billed ones), timed.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use sync_stages::export::run_export;
use sync_stages::import::run_import;

use crate::error::BenchError;
use crate::measure::{StageResult, mib, stage, table};
use crate::rig::{OpenStore, StoreChoice, analytics, export_config, import_config};
use crate::serve::{ServerChild, recent_report_paths};
use crate::synth::Size;
use sync_stages::import::ImportConfig;

pub struct Direction1Args {
    pub size: Size,
    pub store: StoreChoice,
    pub work_dir: Option<PathBuf>,
    pub requests_per_second: u32,
    pub day2: bool,
}

/// Adds the CPU the mock Alma used during the stage to its note (it runs
/// on the same cores, so it is part of the wall time).
fn mock_cpu(mut r: StageResult, server: &ServerChild, last: &mut f64) -> StageResult {
    let now = server.cpu_seconds();
    r.note
        .push_str(&format!("; mock Alma CPU {:.1} s", now - *last));
    *last = now;
    r
}

fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

pub async fn run(args: Direction1Args) -> Result<String, BenchError> {
    let size = args.size;
    let days = if args.day2 { "1,2" } else { "1" };
    let server = ServerChild::serve_alma(&size, days)?;
    let tmp = match &args.work_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .map_err(|e| BenchError::io("creating a work folder", ".", e))?;
    let opened = OpenStore::open(&args.store, tmp.path(), &size.seed.to_string()).await?;
    let store = opened.store.as_ref();
    let analytics = analytics(&server.uri, args.requests_per_second)?;
    let export = export_config(tmp.path().join("exports"));
    // The same clock as the synthesis: day 1 at 06:00, day 2 two days on.
    let day1 = crate::synth::Institution::day1();
    let day2 = day1 + TimeDelta::days(2);
    let mut results: Vec<StageResult> = Vec::new();
    let mut cpu = server.cpu_seconds();

    let import1 = import_config(1);
    let (_, r) = stage("import (day 1)", async {
        let (_, out) = run_import(store, &analytics, &import1, utc(day1)).await?;
        let rows = out.rows_fines + out.rows_transactions + out.rows_balances;
        let note = format!(
            "{} fines + {} transactions + {} balances rows; {} problems",
            out.rows_fines,
            out.rows_transactions,
            out.rows_balances,
            out.problems.len()
        );
        Ok(((), rows, note))
    })
    .await?;
    results.push(mock_cpu(r, &server, &mut cpu));

    let (_, r) = stage("export (day 1)", async {
        let (_, out) = run_export(store, &export, day1.date(), utc(day1)).await?;
        let lines = out.export.as_ref().map_or(0, |e| e.line_count);
        let fines = out.charges + out.reversals + out.nothing_to_send + out.problems.len() as u64;
        let note = format!(
            "{fines} fines decided, {lines} lines written, {} quarantined",
            out.problems.len()
        );
        Ok(((), lines, note))
    })
    .await?;
    results.push(mock_cpu(r, &server, &mut cpu));

    let rerun = day1 + TimeDelta::hours(1);
    let (_, r) = stage("no-change re-run: import", async {
        let (_, out) = run_import(store, &analytics, &import1, utc(rerun)).await?;
        let rows = out.rows_fines + out.rows_transactions + out.rows_balances;
        let changed: Vec<String> = out
            .counts
            .named()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        Ok(((), rows, format!("changed: {}", changed.join(", "))))
    })
    .await?;
    results.push(mock_cpu(r, &server, &mut cpu));
    let (_, r) = stage("no-change re-run: export", async {
        let (_, out) = run_export(store, &export, rerun.date(), utc(rerun)).await?;
        let note = match out.export {
            None => "no export (nothing pending)".to_string(),
            Some(e) => format!("UNEXPECTED export {} with {} lines", e.seq, e.line_count),
        };
        Ok(((), out.problems.len() as u64, note))
    })
    .await?;
    results.push(mock_cpu(r, &server, &mut cpu));

    // The same re-run as production's incremental import asks it: Alma
    // answers only the rows since the last import minus the overlap.
    let recent = ImportConfig {
        paths: recent_report_paths(),
        ..import_config(1)
    };
    let rerun2 = rerun + TimeDelta::hours(1);
    let (_, r) = stage("no-change re-run, since-filtered: import", async {
        let (_, out) = run_import(store, &analytics, &recent, utc(rerun2)).await?;
        let rows = out.rows_fines + out.rows_transactions + out.rows_balances;
        let note = format!(
            "since {}: {} fines + {} transactions + {} balances rows",
            out.since
                .map_or("none (full sweep)".to_string(), |s| s.to_string()),
            out.rows_fines,
            out.rows_transactions,
            out.rows_balances
        );
        Ok(((), rows, note))
    })
    .await?;
    results.push(mock_cpu(r, &server, &mut cpu));
    let (_, r) = stage("no-change re-run, since-filtered: export", async {
        let (_, out) = run_export(store, &export, rerun2.date(), utc(rerun2)).await?;
        let note = match out.export {
            None => "no export (nothing pending)".to_string(),
            Some(e) => format!("UNEXPECTED export {} with {} lines", e.seq, e.line_count),
        };
        Ok(((), out.problems.len() as u64, note))
    })
    .await?;
    results.push(mock_cpu(r, &server, &mut cpu));

    if args.day2 {
        let import2 = import_config(2);
        let (_, r) = stage("import (day 2)", async {
            let (_, out) = run_import(store, &analytics, &import2, utc(day2)).await?;
            let rows = out.rows_fines + out.rows_transactions + out.rows_balances;
            Ok(((), rows, format!("{} problems", out.problems.len())))
        })
        .await?;
        results.push(mock_cpu(r, &server, &mut cpu));
        let (_, r) = stage("export (day 2)", async {
            let (_, out) = run_export(store, &export, day2.date(), utc(day2)).await?;
            let lines = out.export.as_ref().map_or(0, |e| e.line_count);
            let note = format!(
                "{} charged, {} reversed, {} quarantined",
                out.charges,
                out.reversals,
                out.problems.len()
            );
            Ok(((), lines, note))
        })
        .await?;
        results.push(mock_cpu(r, &server, &mut cpu));
    }

    let description = opened.description.clone();
    opened.clean_up().await?;
    drop(server);

    let total = |names: &[&str]| {
        results
            .iter()
            .filter(|r| names.contains(&r.stage.as_str()))
            .fold((std::time::Duration::ZERO, 0u64), |(t, m), r| {
                (t + r.wall, m.max(r.peak_kib))
            })
    };
    let (full, full_peak) = total(&["import (day 1)", "export (day 1)"]);
    let (again, again_peak) = total(&["no-change re-run: import", "no-change re-run: export"]);
    let (recent_total, recent_peak) = total(&[
        "no-change re-run, since-filtered: import",
        "no-change re-run, since-filtered: export",
    ]);
    let mut report = format!(
        "direction1: seed {}, {} fines, {} transactions, {} patrons; store {}; client limit {} requests/s; {} cores\n\n",
        size.seed,
        size.fines,
        size.transactions,
        size.patrons,
        description,
        args.requests_per_second,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    report.push_str(&table(&results));
    report.push_str(&format!(
        "\nimport + export (day 1): {:.2} s, peak {:.1} MiB; no-change re-run (full sweep): {:.2} s, peak {:.1} MiB; no-change re-run (since-filtered): {:.2} s, peak {:.1} MiB\n",
        full.as_secs_f64(),
        mib(full_peak),
        again.as_secs_f64(),
        mib(again_peak),
        recent_total.as_secs_f64(),
        mib(recent_peak)
    ));
    Ok(report)
}
