//! The rehearsal: `today` against a simulated Alma, a local Bursar folder
//! and the embedded store, all in one folder, with no configuration, no
//! network and no services.
//!
//! [`prepare`] writes a configuration (`[rehearsal] enabled = true`, every
//! drop a local folder, the SQLite store) and a payments file into the
//! folder; the configuration is an ordinary one, so every command works on
//! it afterwards (`lookup-fine --config DIR/alma-bursar-sync.toml ...`).
//! Whenever a command on a rehearsal configuration needs Alma,
//! [`start_alma`] starts the simulated Alma (`alma-sim`) on a free loopback
//! port, serves the scenario's three reports at the configured report
//! paths and holds a fee for every open fine of the scenario, so the
//! payments stage posts real payments to it.
//!
//! The built-in scenarios are `fixtures/scenarios/direction1/day1` and
//! `day2`, compiled into the binary so a rehearsal works from any folder.

use std::path::{Path, PathBuf};

use alma_sim::{ReportTable, SimFee, SimulatedAlma};
use sync_core::Money;

use crate::config::{Rehearsal, Settings};
use crate::error::AppError;

/// The configuration file a rehearsal folder holds.
pub const CONFIG_FILE: &str = "alma-bursar-sync.toml";
/// The payments file put in the rehearsal's payments drop.
pub const PAYMENTS_FILE: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE_20241209.csv";

macro_rules! scenario {
    ($day:literal) => {
        [
            (
                "fines.csv",
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../fixtures/scenarios/direction1/",
                    $day,
                    "/fines.csv"
                )),
            ),
            (
                "transactions.csv",
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../fixtures/scenarios/direction1/",
                    $day,
                    "/transactions.csv"
                )),
            ),
            (
                "balances.csv",
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../fixtures/scenarios/direction1/",
                    $day,
                    "/balances.csv"
                )),
            ),
        ]
    };
}

const DAY1: [(&str, &str); 3] = scenario!("day1");
const DAY2: [(&str, &str); 3] = scenario!("day2");

/// The configuration a rehearsal folder starts with. Relative paths are
/// taken from the folder.
pub const CONFIG_TEXT: &str = r#"# Written by `alma-bursar-sync rehearse`: a rehearsal against the built-in
# simulated Alma. Every path is relative to this file's folder. Edit
# `scenario` to "day2" and run `today --config` on this file to see the
# second day (credits split, a waive reversed, a desk payment reported).
# config/example.toml in the source tree documents a production setup.

[rehearsal]
enabled = true
scenario = "day1"

[reports]
fines = "/shared/Rehearsal University/Reports/All Fines"
transactions = "/shared/Rehearsal University/Reports/All Transactions"
balances = "/shared/Rehearsal University/Reports/All User Balances"

[import]
ignore_fines = ["2200000008"]

[store]
kind = "sqlite"
path = "state/alma-bursar-sync.sqlite3"

[folders]
exports = "exports"
sent_archive = "sent"
payments_archive = "payments-archive"

[bursar_sftp]
kind = "local"
folder = "bursar-drop"

[payments_sftp]
kind = "local"
folder = "payments-drop"

[payments]
prefix = "ASUSASF_LIBRARY_REPORT_DTRANGE"

[backup]
local_dir = "backups"

[logging]
dir = "logs"
"#;

/// The Bursar's payments report of the rehearsal: a payment in full, a
/// partial one, a zero-dollar payment, an unknown reference and a patron
/// mismatch.
pub const PAYMENTS_TEXT: &str = "\
Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description
1000001,12/08/2024,2200000001,15.00,15.00,LIBFINE,Library fine
1000002,12/08/2024,2200000002,65.00,30.00,LIBFINE,Library fine
1000003,12/08/2024,2200000004,20.00,0.00,LIBFINE,Library fine
1000099,12/08/2024,2299999999,10.00,10.00,LIBFINE,Library fine
1000099,12/08/2024,2200000006,8.00,8.00,LIBFINE,Library fine
";

fn write_new(path: &Path, text: &str) -> Result<bool, AppError> {
    if path.exists() {
        return Ok(false);
    }
    std::fs::write(path, text).map_err(|e| AppError::io("cannot write", path, e))?;
    Ok(true)
}

/// Makes `dir` a rehearsal folder: configuration, the Bursar's and the
/// payments drop folders, the payments file. What is already there is kept
/// (a second rehearsal in the same folder continues the first). Returns
/// the configuration file.
pub fn prepare(dir: &Path) -> Result<PathBuf, AppError> {
    for folder in [
        dir.to_path_buf(),
        dir.join("bursar-drop"),
        dir.join("payments-drop"),
    ] {
        std::fs::create_dir_all(&folder)
            .map_err(|e| AppError::io("cannot create the folder", &folder, e))?;
    }
    let config = dir.join(CONFIG_FILE);
    write_new(&config, CONFIG_TEXT)?;
    write_new(
        &dir.join("payments-drop").join(PAYMENTS_FILE),
        PAYMENTS_TEXT,
    )?;
    Ok(config)
}

/// The three report tables of a scenario: `day1`, `day2`, or a folder
/// (relative to the configuration's folder) with the three CSV files.
fn scenario_tables(name: &str, base_dir: &Path) -> Result<Vec<(String, ReportTable)>, AppError> {
    let builtin = match name {
        "day1" => Some(DAY1),
        "day2" => Some(DAY2),
        _ => None,
    };
    let mut tables = Vec::new();
    match builtin {
        Some(files) => {
            for (file, text) in files {
                let table = ReportTable::from_csv(text.as_bytes(), file)
                    .map_err(|e| AppError::Rehearsal(e.to_string()))?;
                tables.push((file.to_string(), table));
            }
        }
        None => {
            let folder = base_dir.join(name);
            for file in ["fines.csv", "transactions.csv", "balances.csv"] {
                let path = folder.join(file);
                let reader = std::fs::File::open(&path).map_err(|e| {
                    AppError::io(
                        "cannot open the rehearsal scenario's report (setting rehearsal.scenario is day1, day2 or a folder with fines.csv, transactions.csv, balances.csv)",
                        &path,
                        e,
                    )
                })?;
                let table = ReportTable::from_csv(reader, &path.display().to_string())
                    .map_err(|e| AppError::Rehearsal(e.to_string()))?;
                tables.push((file.to_string(), table));
            }
        }
    }
    Ok(tables)
}

/// Alma's fee type code for an Analytics label: `Overdue fine` ->
/// `OVERDUEFINE`.
fn fee_code(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The open, non-credit fines of the fines report as simulated fees.
fn fees(table: &ReportTable, settings: &Settings) -> Vec<SimFee> {
    let columns = &settings.import.columns.fines;
    let index = |heading: &str| table.headings.iter().position(|h| h.trim() == heading);
    let (Some(id), Some(patron), Some(kind), Some(status), Some(remaining)) = (
        index(&columns.fine_id),
        index(&columns.patron_id),
        index(&columns.fee_type),
        index(&columns.status),
        index(&columns.remaining_amount),
    ) else {
        return Vec::new();
    };
    let cell = |row: &[Option<String>], i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    table
        .rows
        .iter()
        .filter_map(|row| {
            let balance = Money::parse(&cell(row, remaining)).ok()?;
            let open = cell(row, status).eq_ignore_ascii_case("active");
            (open && balance.is_positive() && !cell(row, kind).eq_ignore_ascii_case("credit")).then(
                || {
                    SimFee::active(
                        &cell(row, id),
                        &cell(row, patron),
                        &fee_code(&cell(row, kind)),
                        balance,
                    )
                },
            )
        })
        .collect()
}

/// Starts the simulated Alma with the scenario's reports and fees.
pub async fn start_alma(
    rehearsal: &Rehearsal,
    settings: &Settings,
) -> Result<SimulatedAlma, AppError> {
    let tables = scenario_tables(&rehearsal.scenario, &settings.base_dir)?;
    let sim = SimulatedAlma::start().await;
    let paths = &settings.import.paths;
    for (file, table) in tables {
        let path = match file.as_str() {
            "fines.csv" => {
                for fee in fees(&table, settings) {
                    sim.put_fee(fee);
                }
                &paths.fines
            }
            "transactions.csv" => &paths.transactions,
            _ => &paths.balances,
        };
        sim.serve_report(path, table, rehearsal.page_size);
    }
    Ok(sim)
}

/// Where a rehearsal put things, for the closing message.
pub fn locations(settings: &Settings) -> String {
    let list = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let mut out = String::from("Where things are:\n");
    let line = |out: &mut String, what: &str, path: &Path, files: Vec<String>| {
        out.push_str(&format!("  {what:<18} {}\n", path.display()));
        for file in files {
            out.push_str(&format!("  {:<18}   {file}\n", ""));
        }
    };
    line(&mut out, "configuration", &settings.file, Vec::new());
    let exports = &settings.export.exports_dir;
    line(&mut out, "charge/reversal", exports, list(exports));
    if let crate::config::DropConfig::Local { folder, .. } = &settings.bursar {
        line(&mut out, "Bursar drop", folder, list(folder));
    }
    if let crate::config::DropConfig::Local { folder, .. } = &settings.payments.drop {
        line(&mut out, "payments drop", folder, list(folder));
    }
    line(
        &mut out,
        "store",
        Path::new(&settings.store.describe()),
        Vec::new(),
    );
    let backups = &settings.backup.local_dir;
    line(&mut out, "backups", backups, list(backups));
    line(
        &mut out,
        "logs",
        &settings.logging.dir,
        list(&settings.logging.dir),
    );
    out
}
