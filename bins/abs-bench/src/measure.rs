//! Wall time, peak memory and the results table.
//!
//! Peak memory is the process's own high-water mark of resident memory
//! (`VmHWM` in `/proc/self/status`, what `getrusage`'s `ru_maxrss`
//! reports). Before each stage the mark is reset to the current resident
//! size by writing `5` to `/proc/self/clear_refs` (Linux 4.0+), so each
//! stage's figure is the peak *during* that stage, including whatever the
//! process still held from earlier stages. Where the reset is not allowed
//! the figure is the peak since the process started, and the table says so.

use std::time::{Duration, Instant};

use crate::error::BenchError;

/// Resident-memory figures of this process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub peak_kib: u64,
    pub current_kib: u64,
}

pub fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory {
        peak_kib: field("VmHWM:"),
        current_kib: field("VmRSS:"),
    }
}

/// Resets the high-water mark; false when the kernel refuses.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One measured stage.
#[derive(Clone, Debug)]
pub struct StageResult {
    pub stage: String,
    pub wall: Duration,
    pub rows: u64,
    pub peak_kib: u64,
    pub note: String,
}

impl StageResult {
    // Rates and timings are reported as f64; they never touch money.
    #[allow(clippy::float_arithmetic)]
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        }
    }
}

/// Runs `work` as a stage: resets the peak, times it, reads the peak.
pub async fn stage<T, F>(name: &str, work: F) -> Result<(T, StageResult), BenchError>
where
    F: std::future::Future<Output = Result<(T, u64, String), BenchError>>,
{
    let reset = reset_peak();
    let start = Instant::now();
    let (value, rows, mut note) = work.await?;
    let wall = start.elapsed();
    if !reset {
        note.push_str(" (peak since process start)");
    }
    let result = StageResult {
        stage: name.to_string(),
        wall,
        rows,
        peak_kib: memory().peak_kib,
        note,
    };
    eprintln!(
        "{:<28} {:>9.2} s {:>10} rows {:>10.0} rows/s {:>8.1} MiB  {}",
        result.stage,
        result.wall.as_secs_f64(),
        result.rows,
        result.rows_per_second(),
        mib(result.peak_kib),
        result.note
    );
    Ok((value, result))
}

#[allow(clippy::float_arithmetic)]
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The results as a Markdown table.
pub fn table(results: &[StageResult]) -> String {
    let mut out = String::from(
        "| stage | wall time | rows | rows/s | peak RSS | notes |\n|---|---:|---:|---:|---:|---|\n",
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {:.2} s | {} | {:.0} | {:.1} MiB | {} |\n",
            r.stage,
            r.wall.as_secs_f64(),
            r.rows,
            r.rows_per_second(),
            mib(r.peak_kib),
            r.note
        ));
    }
    out
}
