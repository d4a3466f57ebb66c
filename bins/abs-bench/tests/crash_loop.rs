#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The randomized crash test, CI-sized: a small two-day Direction 1
//! scenario followed by a payments run (Direction 2) against a fees mock
//! that outlives the kills, killed (SIGKILL) at a random point a handful
//! of times, each time re-run to completion and compared with an
//! uninterrupted run: store, files, and every fee's payments in the mock.
//! The benchmark mode (`abs-bench crash --runs 200`) is the same loop,
//! longer.

use std::process::Command;

/// The number after `label` in `text`.
fn count_after(text: &str, label: &str) -> u64 {
    let rest = text
        .split_once(label)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
        .1;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no count after {label:?} in:\n{text}"))
}

#[test]
fn killed_runs_rerun_to_the_uninterrupted_end() {
    let work = tempfile::tempdir().unwrap();
    // 8 runs over 7 stages: the loop aims at every stage at least once,
    // the payments stage included.
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
    // A killed write's temporary file is swept by the next export or send,
    // and a killed download's by the next download of that file.
    assert!(
        stdout.contains("killed writes (ignored by the comparison): 0 []"),
        "{stdout}"
    );
    assert!(
        stdout.contains("left in the import archive (ignored by the comparison): 0 []"),
        "{stdout}"
    );
    // Direction 2 was in the loop, a kill landed in it, and Alma (the
    // fees mock) ended every run with exactly the clean run's payments.
    assert!(
        count_after(&stdout, "kills in the payments stage:") >= 1,
        "{stdout}"
    );
    assert_eq!(count_after(&stdout, "after the re-runs:"), 0, "{stdout}");
    assert!(
        stdout.contains("0 payments posted twice, 0 lost; 0 runs with a fee differing"),
        "{stdout}"
    );
}
