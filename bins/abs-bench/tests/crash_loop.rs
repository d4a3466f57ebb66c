#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The randomized crash test, CI-sized: a small two-day Direction 1
//! scenario killed (SIGKILL) at a random point a handful of times, each
//! time re-run to completion and compared with an uninterrupted run. The
//! benchmark mode (`abs-bench crash --runs 200`) is the same loop, longer.

use std::process::Command;

#[test]
fn killed_runs_rerun_to_the_uninterrupted_end() {
    let work = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_abs-bench"))
        .args(["crash", "--runs", "8", "--fines", "300", "--seed", "11"])
        .arg("--work-dir")
        .arg(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "crash loop failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("8 runs") && stdout.contains("0 differ from the clean run"),
        "{stdout}"
    );
    // A killed write's temporary file is swept by the next export or send.
    assert!(
        stdout.contains("ignored by the comparison): 0 []"),
        "{stdout}"
    );
}
