//! The command line: the old tool's commands, kebab-case, with the old
//! camelCase names as aliases (operators' muscle memory).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit status of a command that did all it was asked.
pub const EXIT_DONE: u8 = 0;
/// Exit status of a command (or a stage of it) that failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status of a bad command line, a bad configuration, or a store that
/// never completed a run.
pub const EXIT_USAGE: u8 = 2;

const EXIT_CODES: &str = "\
Exit status: 0 done; 1 a stage or command failed (the message names it);
2 bad usage, a bad or missing setting, a missing secret, or a store that never
completed a run (see --new-store); nothing was done.";

#[derive(Debug, Parser)]
#[command(
    name = "alma-bursar-sync",
    version,
    about = "Moves library fines between Ex Libris Alma and the Bursar, and the Bursar's payments back to Alma.",
    disable_help_subcommand = true,
    after_help = EXIT_CODES,
)]
pub struct Cli {
    /// The configuration file (TOML). Relative paths in it are taken from
    /// its folder.
    #[arg(
        long,
        global = true,
        env = "ABS_CONFIG",
        default_value = crate::config::DEFAULT_CONFIG,
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// Run as if the clock said this (RFC 3339, e.g. 2024-12-09T06:00:00Z):
    /// for rehearsals and tests. The billing date is its date.
    #[arg(long, global = true, hide = true, env = "ABS_NOW", value_name = "TIME")]
    pub now: Option<String>,

    /// This store is new: let this run fill it. Without it, a command
    /// that runs stages refuses a store that has never completed one,
    /// since a changed path or database, or a deleted file, would send
    /// every open fine to the Bursar again.
    #[arg(long, global = true)]
    pub new_store: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// importAlmaFines, exportBurs, sftpToBurs, importAlmaPayments, backupDB, in that order; stops at the first failing stage.
    #[command(
        after_help = "Example: alma-bursar-sync today --config /etc/alma-bursar-sync/alma-bursar-sync.toml"
    )]
    Today,

    /// importAlmaPayments then backupDB.
    #[command(
        alias = "payFines",
        after_help = "Example: alma-bursar-sync pay-fines --config /etc/alma-bursar-sync/alma-bursar-sync.toml"
    )]
    PayFines,

    /// Direction 1, step 1: read the Alma Analytics reports into the store.
    #[command(
        alias = "importAlmaFines",
        after_help = "Example: alma-bursar-sync import-alma-fines"
    )]
    ImportAlmaFines,

    /// Direction 1, step 2: write the charges and reversals files; sends nothing.
    #[command(
        alias = "exportBurs",
        after_help = "Example: alma-bursar-sync export-burs"
    )]
    ExportBurs,

    /// Direction 1, step 3: upload the unsent export files to the Bursar.
    #[command(
        alias = "sftpToBurs",
        after_help = "Example: alma-bursar-sync sftp-to-burs --dry-run"
    )]
    SftpToBurs {
        /// Only count the charges and reversals that would go.
        #[arg(long)]
        dry_run: bool,
    },

    /// Direction 2: post the Bursar's payments to Alma.
    #[command(
        alias = "importAlmaPayments",
        after_help = "Example: alma-bursar-sync import-alma-payments"
    )]
    ImportAlmaPayments,

    /// Back up the store to the local backup folder (and S3 if configured).
    #[command(
        alias = "backupDB",
        alias = "backupDb",
        after_help = "Example: alma-bursar-sync backup-db"
    )]
    BackupDb,

    /// Wipe the store and restore it from the newest local backup.
    #[command(
        alias = "restoreLast",
        after_help = "Example: alma-bursar-sync restore-last"
    )]
    RestoreLast,

    /// List the 5 newest backups and restore the one chosen.
    #[command(
        alias = "restoreChoose",
        after_help = "Examples:\n  alma-bursar-sync restore-choose            (asks which)\n  alma-bursar-sync restore-choose --pick 2\n  alma-bursar-sync restore-choose --from-s3 --pick 1\n  alma-bursar-sync restore-choose --file /var/backups/abs/abs-backup-20241209T060000.000Z.jsonl.zst"
    )]
    RestoreChoose(RestoreChooseArgs),

    /// Show a fine with its Alma transactions, Bursar ledger and export history.
    #[command(
        alias = "lookupFine",
        after_help = "Examples:\n  alma-bursar-sync lookup-fine --root-alma-fine-id 2200000001\n  alma-bursar-sync lookup-fine --alma-loan-id L2 --json"
    )]
    LookupFine(LookupArgs),

    /// Show the last Direction 1 export: files, lines, sent time.
    #[command(
        alias = "printLastExport",
        after_help = "Example: alma-bursar-sync print-last-export --json"
    )]
    PrintLastExport {
        /// Print JSON instead of the summary.
        #[arg(long)]
        json: bool,
    },

    /// Check the configuration and secrets; lists every problem.
    #[command(
        alias = "checkConfig",
        after_help = "Example: alma-bursar-sync check-config --config /etc/alma-bursar-sync/alma-bursar-sync.toml"
    )]
    CheckConfig,

    /// Run `today` against a built-in simulated Alma, a local Bursar folder and an embedded store.
    #[command(after_help = "Example: alma-bursar-sync rehearse --dir /tmp/abs-rehearsal")]
    Rehearse {
        /// Folder for the rehearsal (created if missing); a new
        /// temporary folder when not given.
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// Days of the built-in scenario to run: 1 (`today` on day 1) or
        /// 2 (then Direction 1 on day 2: a waive, a split credit and
        /// payments seen in Alma, so a reversals file too).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
        days: u8,
    },

    /// List the commands, with an example each.
    #[command(after_help = "Example: alma-bursar-sync help")]
    Help {
        /// A command to show the full help of.
        command: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RestoreChooseArgs {
    /// Restore the N-th newest backup of the listing, without asking.
    #[arg(long, value_name = "N")]
    pub pick: Option<usize>,
    /// Restore this backup file.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["pick", "from_s3"])]
    pub file: Option<PathBuf>,
    /// Choose among the backups in S3 instead of the local folder.
    #[arg(long)]
    pub from_s3: bool,
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The fine's Alma (root) fine id, which is also its Bursar reference.
    #[arg(
        long = "root-alma-fine-id",
        alias = "rootAlmaFineId",
        value_name = "ID",
        required_unless_present = "alma_loan_id",
        conflicts_with = "alma_loan_id"
    )]
    pub root_alma_fine_id: Option<String>,
    /// An Alma item loan id: every fine of the loan.
    #[arg(long = "alma-loan-id", alias = "almaLoanId", value_name = "ID")]
    pub alma_loan_id: Option<String>,
    /// Print JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// The `help` command's list: each command with a copy-pasteable example.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("today", "", "alma-bursar-sync today"),
    ("pay-fines", "payFines", "alma-bursar-sync pay-fines"),
    (
        "import-alma-fines",
        "importAlmaFines",
        "alma-bursar-sync import-alma-fines",
    ),
    ("export-burs", "exportBurs", "alma-bursar-sync export-burs"),
    (
        "sftp-to-burs",
        "sftpToBurs",
        "alma-bursar-sync sftp-to-burs --dry-run",
    ),
    (
        "import-alma-payments",
        "importAlmaPayments",
        "alma-bursar-sync import-alma-payments",
    ),
    ("backup-db", "backupDB", "alma-bursar-sync backup-db"),
    (
        "restore-last",
        "restoreLast",
        "alma-bursar-sync restore-last",
    ),
    (
        "restore-choose",
        "restoreChoose",
        "alma-bursar-sync restore-choose --pick 1",
    ),
    (
        "lookup-fine",
        "lookupFine",
        "alma-bursar-sync lookup-fine --root-alma-fine-id 2200000001",
    ),
    (
        "print-last-export",
        "printLastExport",
        "alma-bursar-sync print-last-export --json",
    ),
    (
        "check-config",
        "checkConfig",
        "alma-bursar-sync check-config",
    ),
    (
        "rehearse",
        "",
        "alma-bursar-sync rehearse --dir /tmp/abs-rehearsal",
    ),
    ("help", "", "alma-bursar-sync help lookup-fine"),
];

/// The text of `alma-bursar-sync help`.
pub fn help_text() -> String {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut out = String::from(
        "alma-bursar-sync: moves library fines between Ex Libris Alma and the Bursar.\n\n\
         Usage: alma-bursar-sync [--config PATH] <COMMAND> [OPTIONS]\n\
         The configuration is --config PATH, else $ABS_CONFIG, else ./alma-bursar-sync.toml.\n\n\
         Commands (old name in brackets), each with an example:\n",
    );
    for (name, alias, example) in COMMANDS {
        let about = command
            .find_subcommand(name)
            .and_then(|c| c.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let alias = if alias.is_empty() {
            String::new()
        } else {
            format!(" [{alias}]")
        };
        out.push_str(&format!(
            "\n  {name}{alias}\n      {about}\n      $ {example}\n"
        ));
    }
    out.push_str(&format!(
        "\n`alma-bursar-sync help COMMAND` or `alma-bursar-sync COMMAND --help` shows a command's options.\n{EXIT_CODES}\n"
    ));
    out
}
