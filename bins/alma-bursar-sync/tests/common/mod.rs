#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Shared by the tests that drive the binary.

use std::process::Output;

use assert_cmd::Command;

/// The binary with a clean environment for the settings it reads.
pub fn abs() -> Command {
    let mut cmd = Command::cargo_bin("alma-bursar-sync").unwrap();
    for name in [
        "ABS_CONFIG",
        "ABS_NOW",
        "ABS_ALMA_API_KEY",
        "ABS_BURSAR_SFTP_PASSWORD",
        "ABS_BURSAR_SFTP_KEY_PASSPHRASE",
        "ABS_PAYMENTS_SFTP_PASSWORD",
        "ABS_PAYMENTS_SFTP_KEY_PASSPHRASE",
        "ABS_MONGODB_PASSWORD",
        "ABS_WEBHOOK_URL",
        "RUST_LOG",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}
