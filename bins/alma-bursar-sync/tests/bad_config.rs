#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A configuration with each kind of bad value (SPEC 10): the command
//! stops before any work with exit status 2, prints nothing on standard
//! output, names the file, the setting and what to do on standard error,
//! and touches nothing: no store file, no logs, no exports.
//!
//! Each case is the good configuration `GOOD` with one bad value, run as
//! `today`, the command that would touch the most. Its paths are
//! relative, so everything a run writes would land in the configuration's
//! own folder, which must hold afterwards only what the test put there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{abs, stderr, stdout};

const NOW: &str = "2024-12-09T06:00:00Z";
const CONFIG: &str = "alma-bursar-sync.toml";
const MISSING: &str = "missing; it has no default, so add it";

/// Good, with local drop folders and every path relative.
const GOOD: &str = r#"[alma]
base_url = "https://api-na.hosted.exlibrisgroup.com"

[reports]
fines = "/shared/R/All Fines"
transactions = "/shared/R/All Transactions"
balances = "/shared/R/All User Balances"

[bursar_sftp]
kind = "local"
folder = "bursar-drop"

[payments_sftp]
kind = "local"
folder = "payments-drop"
"#;

/// `GOOD` with `old` (which it must contain) replaced by `new`.
fn good_but(old: &str, new: &str) -> String {
    assert!(
        GOOD.contains(old),
        "{old:?} is not in the good configuration"
    );
    GOOD.replacen(old, new, 1)
}

/// `GOOD` with `more` appended.
fn good_and(more: &str) -> String {
    format!("{GOOD}\n{more}")
}

/// A folder holding the configuration `text`.
struct Folder {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Folder {
    fn new(text: &str) -> Folder {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join(CONFIG);
        std::fs::write(&config, text).unwrap();
        Folder { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A secrets file readable by its owner only.
    fn secrets(&self, text: &str) -> PathBuf {
        let path = self.path("secrets.toml");
        std::fs::write(&path, text).unwrap();
        set_mode(&path, 0o600);
        path
    }

    /// `command` with the Alma key in the environment, as cron runs it.
    fn run(&self, command: &[&str]) -> Output {
        abs()
            .env("ABS_ALMA_API_KEY", "l8xx-bad-config-test")
            .arg("--config")
            .arg(&self.config)
            .args(["--now", NOW])
            .args(command)
            .output()
            .unwrap()
    }

    /// What the folder holds, by name.
    fn contents(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// `today` stops at the configuration with exactly `problems` and
    /// leaves the folder as it was.
    fn refuses(&self, problems: &[&str]) {
        let before = self.contents();
        let output = self.run(&["today"]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert_eq!(stdout(&output), "");
        let count = match problems.len() {
            1 => "1 configuration problem".to_string(),
            n => format!("{n} configuration problems"),
        };
        let listed: String = problems.iter().map(|p| format!("  {p}\n")).collect();
        assert_eq!(
            stderr(&output),
            format!("error: {count} in {}:\n{listed}", self.config.display())
        );
        assert_eq!(self.contents(), before, "a refused run touches nothing");
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

/// `text` is refused with exactly one problem.
fn refused(text: &str, problem: &str) {
    Folder::new(text).refuses(&[problem]);
}

// ------------------------------------------------- the good configuration

/// The reference every case departs from: good, and a command run on it
/// does write into its folder, so "touches nothing" above can fail.
#[test]
fn the_good_configuration_is_good_and_a_run_on_it_writes_its_folder() {
    let folder = Folder::new(GOOD);
    let output = folder.run(&["check-config"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with(&format!(
            "Configuration {} is good.\n",
            folder.config.display()
        )),
        "{}",
        stdout(&output)
    );
    assert_eq!(folder.contents(), [CONFIG]);

    let output = folder.run(&["print-last-export"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "No export yet: export-burs makes one when there is something to bill.\n"
    );
    assert_eq!(
        folder.contents(),
        ["alma-bursar-sync.sqlite3", CONFIG, "logs"]
    );
}

// ------------------------------------------------------- the file itself

#[test]
fn no_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = abs().current_dir(dir.path()).arg("today").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "error: no configuration file at alma-bursar-sync.toml; give one with --config PATH or \
         ABS_CONFIG (config/example.toml is an annotated example), or try `alma-bursar-sync rehearse`\n"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn not_valid_toml() {
    let folder = Folder::new(&good_but("[reports]", "[reports"));
    let output = folder.run(&["today"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "error: the configuration file {} is not valid TOML: TOML parse error at line 4, column 9\n  |\n4 | [reports\n  |         ^\nunclosed table, expected `]`\n",
            folder.config.display()
        )
    );
    assert_eq!(folder.contents(), [CONFIG]);
}

// ------------------------------------------------------------ settings

#[test]
fn an_unknown_setting_is_named_with_the_nearest_known_one() {
    refused(
        &good_but("[alma]\n", "[alma]\nrequests_per_secnd = 5\n"),
        "alma.requests_per_secnd: unknown setting; did you mean requests_per_second?",
    );
}

#[test]
fn an_unknown_setting_lists_the_known_ones() {
    refused(
        &good_and("[logging]\ncolour = true\n"),
        "logging.colour: unknown setting (known here: dir, keep_days, level)",
    );
}

#[test]
fn an_unknown_table() {
    refused(
        &good_and("[notfy]\nwebhook_url = \"https://hooks.example.edu/x\"\n"),
        "notfy: unknown setting; did you mean notify?",
    );
}

#[test]
fn a_value_of_the_wrong_type() {
    refused(
        &good_but(
            "transactions = \"/shared/R/All Transactions\"",
            "transactions = 3",
        ),
        "reports.transactions: expected text, found the number 3",
    );
}

#[test]
fn a_number_out_of_range() {
    refused(
        &good_but("[alma]\n", "[alma]\nrequests_per_second = 100\n"),
        "alma.requests_per_second: 100 is out of range; it must be 1 to 25",
    );
}

#[test]
fn a_choice_that_is_not_offered() {
    refused(
        &good_and("[store]\nkind = \"postgres\"\n"),
        "store.kind: \"postgres\" is not one of sqlite, mongodb",
    );
}

#[test]
fn a_missing_required_setting() {
    refused(
        &good_but("balances = \"/shared/R/All User Balances\"\n", ""),
        &format!("reports.balances: {MISSING}"),
    );
}

#[test]
fn an_empty_required_setting() {
    refused(
        &good_but(
            "base_url = \"https://api-na.hosted.exlibrisgroup.com\"",
            "base_url = \" \"",
        ),
        "alma.base_url: is empty; it has no default, so give it a value",
    );
}

#[test]
fn a_setting_of_the_other_kind_of_drop() {
    refused(
        &good_but(
            "folder = \"bursar-drop\"\n",
            "folder = \"bursar-drop\"\nhost = \"sftp.bursar.example.edu\"\n",
        ),
        "bursar_sftp.host: is only used with kind = \"sftp\"",
    );
}

#[test]
fn a_bad_date() {
    refused(
        &good_and("[reports.since]\nmode = \"fixed\"\ndate = \"2017-13-01\"\n"),
        "reports.since.date: \"2017-13-01\" is not a date YYYY-MM-DD",
    );
}

/// A bare word is a valid filter for a target of that name, so a
/// misspelt level used to be taken, and the run went ahead with its log
/// silenced.
#[test]
fn a_misspelt_log_level() {
    refused(
        &good_and("[logging]\nlevel = \"infoo\"\n"),
        "logging.level: \"infoo\" is not a log level or filter; use error, warn, info, debug or trace",
    );
}

#[test]
fn a_log_filter_with_targets_is_good() {
    let folder = Folder::new(&good_and("[logging]\nlevel = \"WARN,alma_api=debug\"\n"));
    let output = folder.run(&["check-config"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_log_filter_that_does_not_parse() {
    refused(
        &good_and("[logging]\nlevel = \"info,alma_api=loud\"\n"),
        "logging.level: \"info,alma_api=loud\" is not a log level or filter; use error, warn, info, debug or trace",
    );
}

// ------------------------------------------------------------- secrets

/// A key pasted twice with a line break between would fail every Alma
/// request; it is
/// named (not shown) with the configuration's problems, before anything runs.
#[test]
fn an_alma_api_key_a_header_cannot_carry() {
    let folder = Folder::new(GOOD);
    let before = folder.contents();
    let output = abs()
        .env("ABS_ALMA_API_KEY", "l8xx-pasted\nl8xx-twice")
        .arg("--config")
        .arg(&folder.config)
        .args(["--now", NOW, "today"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!(
            "error: 1 configuration problem in {}:\n  ABS_ALMA_API_KEY: the Alma API key has \
             characters not allowed in an HTTP header (a line break or another control character, \
             or a non-ASCII character: check how it was pasted)\n",
            folder.config.display()
        )
    );
    assert_eq!(folder.contents(), before);
}

#[test]
fn a_missing_secret() {
    let folder = Folder::new(GOOD);
    let before = folder.contents();
    let output = abs()
        .arg("--config")
        .arg(&folder.config)
        .arg("today")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "error: 1 configuration problem in {}:\n  ABS_ALMA_API_KEY: missing: the Alma API key; set it \
             in the environment, or in a secrets file (setting secrets.file)\n",
            folder.config.display()
        )
    );
    assert_eq!(folder.contents(), before);
}

/// A secrets file supplies what the environment does not.
#[test]
fn a_secrets_file_supplies_a_missing_secret() {
    let folder = Folder::new(&format!("[secrets]\nfile = \"secrets.toml\"\n{GOOD}"));
    folder.secrets("ABS_ALMA_API_KEY = \"l8xx-secret\"\n");
    let output = abs()
        .arg("--config")
        .arg(&folder.config)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stdout(&output).contains("l8xx-secret"));
}

#[test]
fn a_missing_secrets_file() {
    let folder = Folder::new(&format!("[secrets]\nfile = \"secrets.toml\"\n{GOOD}"));
    folder.refuses(&[&format!(
        "secrets.file: cannot read {}: No such file or directory (os error 2); create it (readable \
         by this account only: chmod 600) or correct the setting",
        folder.path("secrets.toml").display()
    )]);
}

#[cfg(unix)]
#[test]
fn a_secrets_file_others_can_read() {
    let folder = Folder::new(&format!("[secrets]\nfile = \"secrets.toml\"\n{GOOD}"));
    let secrets = folder.secrets("ABS_ALMA_API_KEY = \"l8xx-secret\"\n");
    set_mode(&secrets, 0o644);
    folder.refuses(&[&format!(
        "secrets.file: {} can be read by other users (mode 644); run chmod 600 on it",
        secrets.display()
    )]);
}

#[test]
fn an_unknown_name_in_the_secrets_file() {
    let folder = Folder::new(&format!("[secrets]\nfile = \"secrets.toml\"\n{GOOD}"));
    let secrets = folder.secrets("ABS_ALMA_KEY = \"l8xx-secret\"\n");
    folder.refuses(&[&format!(
        "secrets.file: {}: unknown secret ABS_ALMA_KEY (known: ABS_WEBHOOK_URL, AWS_ACCESS_KEY_ID, \
         AWS_SECRET_ACCESS_KEY, ABS_ALMA_API_KEY, ABS_BURSAR_SFTP_PASSWORD, ABS_BURSAR_SFTP_KEY_PASSPHRASE, \
         ABS_PAYMENTS_SFTP_PASSWORD, ABS_PAYMENTS_SFTP_KEY_PASSPHRASE, ABS_MONGODB_PASSWORD)",
        secrets.display()
    )]);
}

#[test]
fn a_password_written_in_the_mongodb_uri() {
    refused(
        &good_and(
            "[store]\nkind = \"mongodb\"\nuri = \"mongodb://abs:s3cret@db.example.edu/\"\ndatabase = \"bursar_sync\"\n",
        ),
        "store.uri: contains a password; write {password} in its place and set ABS_MONGODB_PASSWORD",
    );
}

// ---------------------------------------------------------------- URLs

#[test]
fn an_alma_url_without_a_scheme() {
    refused(
        &good_but(
            "\"https://api-na.hosted.exlibrisgroup.com\"",
            "\"api-na.hosted.exlibrisgroup.com\"",
        ),
        "alma.base_url: \"api-na.hosted.exlibrisgroup.com\" does not start with https://; use your \
         region's API host, e.g. https://api-na.hosted.exlibrisgroup.com",
    );
}

#[test]
fn an_alma_url_without_a_host() {
    refused(
        &good_but(
            "\"https://api-na.hosted.exlibrisgroup.com\"",
            "\"https://\"",
        ),
        "alma.base_url: \"https://\" is not a web address (empty host); use your region's API host, \
         e.g. https://api-na.hosted.exlibrisgroup.com",
    );
}

#[test]
fn an_alma_url_with_a_space_in_its_host() {
    refused(
        &good_but(
            "\"https://api-na.hosted.exlibrisgroup.com\"",
            "\"https://api-na.hosted exlibrisgroup.com\"",
        ),
        "alma.base_url: \"https://api-na.hosted exlibrisgroup.com\" is not a web address (invalid \
         international domain name); use your region's API host, e.g. https://api-na.hosted.exlibrisgroup.com",
    );
}

#[test]
fn a_webhook_url_without_a_scheme() {
    refused(
        &good_and("[notify]\nwebhook_url = \"hooks.example.edu/abc\"\n"),
        "notify.webhook_url: \"hooks.example.edu/abc\" does not start with https://",
    );
}

#[test]
fn a_webhook_url_that_is_not_a_web_address() {
    refused(
        &good_and("[notify]\nwebhook_url = \"https://hooks example.edu/abc\"\n"),
        "notify.webhook_url: \"https://hooks example.edu/abc\" is not a web address (invalid \
         international domain name); copy it whole from the chat service",
    );
}

#[test]
fn an_s3_endpoint_without_a_scheme() {
    refused(
        &good_and("[backup.s3]\nbucket = \"library-backups\"\nendpoint = \"minio:9000\"\n"),
        "backup.s3.endpoint: \"minio:9000\" does not start with http:// or https://",
    );
}

// ---------------------------------------------------------------- SFTP

#[test]
fn a_bad_sftp_port() {
    refused(
        &good_but(
            "[bursar_sftp]\nkind = \"local\"\nfolder = \"bursar-drop\"\n",
            "[bursar_sftp]\nhost = \"sftp.bursar.example.edu\"\nport = 70000\nuser = \"lib\"\n\
             known_hosts = \"known_hosts\"\nfolder = \"/incoming\"\nauth = \"key\"\nkey_file = \"id_ed25519\"\n",
        ),
        "bursar_sftp.port: 70000 is not a port (1 to 65535)",
    );
}

// ------------------------------------------------------ rules and layout

#[test]
fn an_unknown_fee_type_in_an_account_rule() {
    refused(
        &good_and(
            "[account_rules]\ndefault_account = \"531000000002\"\n\n[[account_rules.rules]]\n\
             account = \"531000000001\"\nfee_type = \"Lost item\"\n",
        ),
        "account_rules: unknown fee type \"Lost item\"; known types: Lost item replacement fee, \
         Lost item process fee, Overdue fine, Recalled Overdue fine, Card renewal, Damaged item fee, \
         Other, Registration fee, Credit in `rules.fee_type`",
    );
}

#[test]
fn an_account_rule_without_a_condition() {
    refused(
        &good_and(
            "[account_rules]\ndefault_account = \"531000000002\"\n\n[[account_rules.rules]]\n\
             account = \"531000000001\"\n",
        ),
        "account_rules.rules[0]: has no condition; give location_starts_with, location_contains or \
         fee_type (or use default_account)",
    );
}

#[test]
fn an_account_wider_than_its_field() {
    refused(
        &good_and(
            "[account_rules]\ndefault_account = \"5310000000020\"\n\n[[account_rules.rules]]\n\
             account = \"531000000005\"\nlocation_starts_with = \"law\"\n",
        ),
        "account_rules.default_account: \"5310000000020\" is 13 characters, wider than the account \
         field of the Bursar's lines (bursar_layout.fields[1], width 12); correct the account or \
         widen the field",
    );
}

#[test]
fn a_term_code_wider_than_its_field() {
    refused(
        &good_and(
            "[term_rule]\nprefix = \"222\"\nseasons = [{ from_month = 1, to_month = 6, code = \"1\" }, \
             { from_month = 7, to_month = 12, code = \"7\" }]\n",
        ),
        "term_rule: gives term codes of 6 characters (prefix \"222\", two digits of the year, the \
         season's code), wider than the term_code field of the Bursar's lines \
         (bursar_layout.fields[5], width 5); shorten the prefix or the codes, or widen the field",
    );
}

#[test]
fn a_due_day_some_months_do_not_have() {
    refused(
        &good_and("[due_date]\nday_of_month = 31\n"),
        "due_date.day_of_month: is 31; it must be between 1 and 28 so that the day exists in every month",
    );
}

#[test]
fn a_month_without_a_term_season() {
    refused(
        &good_and(
            "[term_rule]\nprefix = \"2\"\nseasons = [{ from_month = 1, to_month = 5, code = \"1\" }, \
             { from_month = 8, to_month = 12, code = \"7\" }]\n",
        ),
        "term_rule.seasons: does not cover month 6; every month 1-12 needs exactly one season",
    );
}

/// The configuration holds no amount of money; the nearest is how the
/// Bursar's lines write one.
#[test]
fn an_unknown_amount_style() {
    refused(
        &good_and("[bursar_layout]\namount_style = \"dollars\"\n"),
        "bursar_layout: unknown variant `dollars`, expected `decimal` or `cents` in `amount_style`",
    );
}

#[test]
fn a_layout_field_of_width_zero() {
    refused(
        &good_and(
            "[bursar_layout]\nfields = [\n  { field = \"patron_id\", width = 11 },\n  \
             { field = \"amount\", width = 0 },\n  { field = \"reference\", width = 31 },\n]\n",
        ),
        "bursar_layout.fields[1].width: the amount field has width 0; give it at least 1",
    );
}

#[test]
fn a_date_format_wider_than_its_field() {
    refused(
        &good_and("[bursar_layout]\ndate_format = \"%Y-%m-%d\"\n"),
        "bursar_layout.fields[3].width: date_format \"%Y-%m-%d\" writes 10 characters (e.g. \
         \"2000-09-27\"), wider than the due_date field's width of 9",
    );
}

// -------------------------------------------------------- report columns

/// Two settings naming one heading would read the remaining amount as the
/// original amount.
#[test]
fn two_report_columns_naming_one_heading() {
    refused(
        &good_and("[reports.columns.fines]\nremaining_amount = \"Original Amount\"\n"),
        "reports.columns.fines.remaining_amount: \"Original Amount\" is also the original_amount \
         column; each setting must name its own column",
    );
}

#[test]
fn an_empty_report_column() {
    refused(
        &good_and("[reports.columns.transactions]\namount = \" \"\n"),
        "reports.columns.transactions.amount: is empty; give the heading of the report's column, \
         or leave the setting out for the default",
    );
}

// ------------------------------------------------------ payments columns

#[test]
fn an_empty_payment_column() {
    refused(
        &good_and("[payments.columns]\nreference = \"\"\n"),
        "payments.columns.reference: is empty; give the column's header in the payments file, or \
         leave the setting out for \"Reference Number\"",
    );
}

/// Two settings naming one column would read the charge amount as the
/// paid amount, and post it.
#[test]
fn two_payment_columns_naming_one_header() {
    refused(
        &good_and("[payments.columns]\npaid_amount = \"charge amount \"\n"),
        "payments.columns.paid_amount: \"charge amount \" is also payments.columns.charge_amount; \
         each setting must name its own column",
    );
}

#[test]
fn an_unknown_payment_column() {
    refused(
        &good_and("[payments.columns]\namount = \"Amount\"\n"),
        "payments.columns: unknown field `amount`, expected one of `emplid`, `date_paid`, \
         `reference`, `charge_amount`, `paid_amount`, `item_type`, `description`",
    );
}

// ------------------------------------------------------------- at once

const EVERY_PROBLEM: &str = r#"
[alma]
base_ulr = "https://api-na.hosted.exlibrisgroup.com"
requests_per_second = 100

[reports]
fines = "/shared/Reports/All Fines"
transactions = 3

[reports.since]
mode = "fixed"

[store]
kind = "postgres"

[bursar_sftp]
host = "sftp.example.edu"
port = 70000
user = "lib"

[payments_sftp]
kind = "local"

[backup]
keep = 0

[backup.s3]
bucket = "library-backups"
endpoint = "minio:9000"

[notify]
webhook_url = "hooks.example.edu/abc"

[due_date]
day_of_month = 31
"#;

/// Every problem of the file at once, in the file's order, so that an
/// operator fixes them in one go, whatever the command.
#[test]
fn every_problem_is_listed_at_once() {
    let folder = Folder::new(EVERY_PROBLEM);
    let problems = [
        format!("alma.base_url: {MISSING}"),
        "alma.requests_per_second: 100 is out of range; it must be 1 to 25".to_string(),
        "alma.base_ulr: unknown setting; did you mean base_url?".to_string(),
        "reports.transactions: expected text, found the number 3".to_string(),
        format!("reports.balances: {MISSING}"),
        format!("reports.since.date: {MISSING}"),
        "due_date.day_of_month: is 31; it must be between 1 and 28 so that the day exists in every month"
            .to_string(),
        "store.kind: \"postgres\" is not one of sqlite, mongodb".to_string(),
        "bursar_sftp.port: 70000 is not a port (1 to 65535)".to_string(),
        format!("bursar_sftp.known_hosts: {MISSING}"),
        format!("bursar_sftp.folder: {MISSING}"),
        "ABS_BURSAR_SFTP_PASSWORD: missing: the password for bursar_sftp.user; set it in the \
         environment, or in a secrets file (setting secrets.file)"
            .to_string(),
        format!("payments_sftp.folder: {MISSING}"),
        "backup.keep: 0 is out of range; it must be 1 to 10000".to_string(),
        "backup.s3.endpoint: \"minio:9000\" does not start with http:// or https://".to_string(),
        "notify.webhook_url: \"hooks.example.edu/abc\" does not start with https://".to_string(),
    ];
    let problems: Vec<&str> = problems.iter().map(String::as_str).collect();
    folder.refuses(&problems);
    // Other commands stop at the same problems (less the secrets they do
    // not need).
    for command in [
        &["check-config"][..],
        &["lookup-fine", "--root-alma-fine-id", "1"],
    ] {
        let output = folder.run(command);
        assert_eq!(output.status.code(), Some(2), "{command:?}");
        assert_eq!(stdout(&output), "", "{command:?}");
        let err = stderr(&output);
        for problem in problems.iter().filter(|p| !p.starts_with("ABS_")) {
            assert!(
                err.contains(&format!("\n  {problem}\n")),
                "{command:?}: missing {problem:?} in\n{err}"
            );
        }
    }
    assert_eq!(folder.contents(), [CONFIG]);
}
