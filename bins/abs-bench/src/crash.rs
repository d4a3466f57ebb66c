//! The randomized crash test.
//!
//! `abs-bench run-scenario` runs a two-day Direction 1 scenario (import,
//! export, send; twice) against a mock Alma in another process, with the
//! embedded store and local Bursar and archive folders in `--dir`. After
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
//! jobs) and every file the Bursar, the archives and the exports folder
//! hold with the clean run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use fine_store::{FineStore, SqliteStore, StoreDump};
use sftp_transport::{IfMissing, LocalDir};
use sync_stages::export::run_export;
use sync_stages::import::run_import;
use sync_stages::send::{SendTargets, run_send};

use crate::error::BenchError;
use crate::rig::{analytics, export_config, import_config, records};
use crate::serve::ServerChild;
use crate::synth::{Institution, Rng, Size};

const STAGES: [&str; 6] = [
    "import day 1",
    "export day 1",
    "send day 1",
    "import day 2",
    "export day 2",
    "send day 2",
];
const FOLDERS: [&str; 4] = ["exports", "bursar", "archive", "remote-archive"];

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

/// `run-scenario`: the stages not yet done, in order.
pub async fn run_scenario(alma: &str, dir: &Path) -> Result<(), BenchError> {
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
    let started = Instant::now();
    let mut timings = Vec::new();
    for step in read_progress(dir)..STAGES.len() {
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

/// What a finished run left: the store less the jobs, and the files.
#[derive(PartialEq, Eq)]
struct Snapshot {
    records: StoreDump,
    files: BTreeMap<String, Vec<u8>>,
}

/// Reads what a finished run left; also returns its hidden leftovers
/// (temporary files of writes that were killed).
async fn snapshot(dir: &Path) -> Result<(Snapshot, Vec<String>), BenchError> {
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
    Ok((Snapshot { records, files }, leftovers))
}

fn scenario_command(alma: &str, dir: &Path) -> Result<Command, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::io("finding the running executable", ".", e))?;
    let mut command = Command::new(exe);
    command
        .args(["run-scenario", "--alma", alma, "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Ok(command)
}

fn run_to_completion(alma: &str, dir: &Path) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let output = scenario_command(alma, dir)?
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
    pub size: Size,
    pub work_dir: Option<PathBuf>,
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
    out.join("; ")
}

// Kill delays are f64 fractions of a duration; no money here.
#[allow(clippy::float_arithmetic)]
pub async fn crash(args: CrashArgs) -> Result<String, BenchError> {
    let size = args.size;
    let server = ServerChild::serve_alma(&size, "1,2")?;
    let tmp = match &args.work_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .map_err(|e| BenchError::io("creating a work folder", ".", e))?;

    let clean_dir = tmp.path().join("clean");
    let clean_time = run_to_completion(&server.uri, &clean_dir)?;
    let (clean, _) = snapshot(&clean_dir).await?;
    eprintln!(
        "crash: clean run {:.2} s: {} files, {} fines, {} exports",
        clean_time.as_secs_f64(),
        clean.files.len(),
        clean.records.fines.len(),
        clean.records.exports.len()
    );
    if clean.records.exports.len() < 2 {
        return Err(BenchError::Check(
            "the scenario made fewer than two exports; nothing to test".into(),
        ));
    }

    let mut rng = Rng::new(size.seed.wrapping_mul(31).wrapping_add(7));
    // Each kill aims at a stage chosen uniformly (a short stage is as
    // likely a target as a long one), at a uniform point within the clean
    // run's time for that stage.
    let windows = stage_windows(&clean_dir, clean_time);
    let mut killed_after = [0u64; STAGES.len() + 1];
    let mut finished_before_kill = 0u64;
    let mut leftovers_total = 0usize;
    let mut leftover_examples: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let started = Instant::now();
    for run in 1..=args.runs {
        let dir = tmp.path().join(format!("run-{run}"));
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("creating", dir.clone(), e))?;
        let target = usize::try_from(rng.below(windows.len() as u64)).unwrap_or(0);
        let (from, to) = windows[target];
        let delay = Duration::from_secs_f64((to - from) * (rng.below(1_000_000) as f64 / 1e6));
        let mut child = scenario_command(&server.uri, &dir)?
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BenchError::io("starting the scenario in", dir.clone(), e))?;
        // Wait for the target stage to begin (the stages before it are
        // recorded done), then for the random point within it.
        while read_progress(&dir) < target && matches!(child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(delay).await;
        match child.try_wait() {
            Ok(Some(_)) => finished_before_kill += 1,
            _ => {
                // std's kill is SIGKILL on Unix: no handler, no clean-up.
                let _ = child.kill();
                let _ = child.wait();
                let done = read_progress(&dir);
                killed_after[done.min(STAGES.len())] += 1;
            }
        }
        if let Err(error) = run_to_completion(&server.uri, &dir) {
            failures.push(format!(
                "run {run} (killed after {:.3} s): re-run failed: {error}",
                delay.as_secs_f64()
            ));
            continue;
        }
        let (snap, leftovers) = snapshot(&dir).await?;
        leftovers_total += leftovers.len();
        if leftover_examples.len() < 5 {
            leftover_examples.extend(leftovers.into_iter().take(5 - leftover_examples.len()));
        }
        if snap != clean {
            failures.push(format!(
                "run {run} (killed after {:.3} s): {} (kept in {})",
                delay.as_secs_f64(),
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
    drop(server);

    let mut report = format!(
        "crash: seed {}, {} fines, {} transactions, two days (import, export, send each); clean run {:.2} s\n\
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
