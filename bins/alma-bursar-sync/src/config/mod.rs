//! The configuration: one TOML file for everything that is not secret,
//! secrets from the environment or a secrets file (see [`secrets`]).
//!
//! [`load`] reads the whole file and returns either the [`Settings`] every
//! command works from, built once and immutable, or *every* problem found,
//! each naming its setting (`alma.base_url: missing`), so an operator fixes
//! them in one go. Nothing is done before the configuration is good.
//! `docs/configuration.md` documents every setting and its default; the
//! defaults live here.

pub mod reader;
pub mod secrets;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alma_analytics::{BalanceColumns, FineColumns, ReportColumns, TransactionColumns};
use alma_api::{AlmaConfig, ApiKey, RetryPolicy};
use backup::{BackupConfig, S3Config};
use bursar_format::{FieldKind, Layout, LayoutConfig, PaymentColumns};
use chrono::NaiveDate;
use fine_store::MongoConfig;
use sftp_transport::{SftpAuth, SftpConfig};
use sync_core::records::FineId;
use sync_core::rules::accounts::AccountRules;
use sync_core::rules::calendar::{DueDateRule, TermRule};
use sync_core::rules::payments::DeskPaymentPolicy;
use sync_stages::export::ExportConfig;
use sync_stages::export_plan::BillingRules;
use sync_stages::import::{ImportConfig, ReportPaths, SinceMode};
use sync_stages::import_plan::ImportSettings;

pub use reader::ConfigProblem;
use reader::{Problems, Section};
use secrets::Secrets;

/// The configuration file used when neither `--config` nor `ABS_CONFIG`
/// names one.
pub const DEFAULT_CONFIG: &str = "alma-bursar-sync.toml";

/// Which secrets a command needs: a command that does not talk to Alma
/// does not fail for want of an API key. `check-config` asks for all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub alma: bool,
    pub bursar_drop: bool,
    pub payments_drop: bool,
    pub store: bool,
}

impl Needs {
    pub const ALL: Needs = Needs {
        alma: true,
        bursar_drop: true,
        payments_drop: true,
        store: true,
    };
    pub const STORE: Needs = Needs {
        alma: false,
        bursar_drop: false,
        payments_drop: false,
        store: true,
    };
}

/// Everything a command works from.
#[derive(Debug)]
pub struct Settings {
    /// The configuration file.
    pub file: PathBuf,
    /// Its folder: relative paths in it are taken from here.
    pub base_dir: PathBuf,
    pub rehearsal: Option<Rehearsal>,
    pub alma: AlmaConfig,
    pub import: ImportConfig,
    pub export: ExportConfig,
    pub store: StoreConfig,
    pub bursar: DropConfig,
    /// Local copy of every file sent to the Bursar.
    pub sent_archive: Option<PathBuf>,
    pub payments: PaymentsConfig,
    pub backup: BackupConfig,
    pub notify: NotifyConfig,
    pub logging: LoggingConfig,
}

/// Run against the built-in simulated Alma instead of a real one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rehearsal {
    /// `day1`, `day2` (built in) or a folder with fines.csv,
    /// transactions.csv and balances.csv.
    pub scenario: String,
    /// Rows per simulated Analytics page.
    pub page_size: usize,
}

#[derive(Clone, Debug)]
pub enum StoreConfig {
    Sqlite(PathBuf),
    Mongo(MongoConfig),
}

impl StoreConfig {
    /// For messages: never shows a password.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreConfig::Mongo(mongo) => format!("mongodb:{}", mongo.database),
        }
    }

    /// The file whose lock a run holds (see `context::lock_runs`): beside
    /// the SQLite file; for MongoDB, in this machine's temporary folder by
    /// database name, so it keeps apart the runs of one machine only.
    pub fn lock_file(&self) -> PathBuf {
        match self {
            StoreConfig::Sqlite(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push(".lock");
                PathBuf::from(name)
            }
            StoreConfig::Mongo(mongo) => {
                let database: String = mongo
                    .database
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                std::env::temp_dir().join(format!("alma-bursar-sync-mongodb-{database}.lock"))
            }
        }
    }
}

/// A folder files are dropped into or picked up from.
#[derive(Clone, Debug)]
pub enum DropConfig {
    /// A folder on this machine (a mounted share, or a rehearsal).
    Local {
        folder: PathBuf,
        archive: Option<PathBuf>,
    },
    Sftp {
        config: SftpConfig,
        /// Archive folder on the same server.
        archive: Option<String>,
    },
}

impl DropConfig {
    pub fn describe(&self) -> String {
        match self {
            DropConfig::Local { folder, .. } => folder.display().to_string(),
            DropConfig::Sftp { config, .. } => format!(
                "sftp://{}@{}:{}/{}",
                config.user,
                config.host,
                config.port,
                config.folder.trim_start_matches('/')
            ),
        }
    }
}

#[derive(Clone, Debug)]
pub struct PaymentsConfig {
    pub drop: DropConfig,
    /// The payments file's name starts with this.
    pub prefix: String,
    pub columns: PaymentColumns,
    /// Where a copy of every payments file read is kept.
    pub archive: PathBuf,
    /// Rows worked at once; None: twice Alma's requests per second.
    pub concurrency: Option<std::num::NonZeroUsize>,
}

#[derive(Clone, Debug, Default)]
pub struct NotifyConfig {
    pub webhook_url: Option<String>,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct LoggingConfig {
    pub dir: PathBuf,
    /// A tracing filter, e.g. `info` or `info,alma_api=debug`.
    pub level: String,
    /// Daily files kept.
    pub keep_days: usize,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no configuration file at {path}; give one with --config PATH or ABS_CONFIG (config/example.toml is an annotated example), or try `alma-bursar-sync rehearse`"
    )]
    NotFound { path: PathBuf },
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{} in {}:\n{}", count(.problems.len()), .path.display(), list(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 configuration problem".to_string()
    } else {
        format!("{n} configuration problems")
    }
}

fn list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and checks the configuration file at `path`.
pub fn load(path: &Path, needs: Needs) -> Result<Settings, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
    parse(&text, path, &base_dir, needs)
}

/// Reads and checks configuration text; relative paths are taken from
/// `base_dir`.
pub fn parse(
    text: &str,
    file: &Path,
    base_dir: &Path,
    needs: Needs,
) -> Result<Settings, ConfigError> {
    let table: toml::Table =
        text.parse()
            .map_err(|error: toml::de::Error| ConfigError::Syntax {
                path: file.to_path_buf(),
                message: error.to_string().trim().to_string(),
            })?;
    let problems = Problems::default();
    let root = Section::root(&table, &problems, base_dir);
    let settings = read_settings(&root, file, base_dir, needs);
    root.finish();
    match settings {
        Some(settings) if problems.is_empty() => Ok(settings),
        _ => Err(ConfigError::Invalid {
            path: file.to_path_buf(),
            problems: problems.into_vec(),
        }),
    }
}

/// Reads every section, so that every problem is found; gives settings
/// only if everything could be read.
fn read_settings(
    root: &Section<'_>,
    file: &Path,
    base_dir: &Path,
    needs: Needs,
) -> Option<Settings> {
    let secrets_section = root.section("secrets");
    let secrets = Secrets::load(secrets_section.optional_path("file"), root.problems());
    secrets_section.finish();

    let rehearsal = read_rehearsal(&root.section("rehearsal"));
    let alma = read_alma(&root.section("alma"), &secrets, rehearsal.is_some(), needs);
    let import = read_import(root);
    let billing = read_billing(root);
    let layout = read_layout(root);
    if let (Some(import), Some(billing), Some(layout)) = (&import, &billing, &layout) {
        check_widths(
            root.problems(),
            layout,
            &import.settings.account_rules,
            &billing.term,
        );
    }
    let store = read_store(&root.section("store"), &secrets, needs);

    let folders = root.section("folders");
    let exports_dir = folders.path_or("exports", "exports");
    let sent_archive = Some(folders.path_or("sent_archive", "sent"));
    let payments_archive = folders.path_or("payments_archive", "payments-archive");
    folders.finish();

    let bursar = read_drop(
        &root.section("bursar_sftp"),
        &secrets,
        needs.bursar_drop,
        (
            secrets::BURSAR_SFTP_PASSWORD,
            secrets::BURSAR_SFTP_PASSPHRASE,
        ),
    );
    let payments_drop = read_drop(
        &root.section("payments_sftp"),
        &secrets,
        needs.payments_drop,
        (
            secrets::PAYMENTS_SFTP_PASSWORD,
            secrets::PAYMENTS_SFTP_PASSPHRASE,
        ),
    );
    let payments_section = root.section("payments");
    let prefix = payments_section.string_or("prefix", "ASUSASF_LIBRARY_REPORT_DTRANGE");
    if prefix.trim().is_empty() {
        payments_section.problem(
            "prefix",
            "is empty; it must be the start of the payments file's name",
        );
    }
    let payment_columns = if payments_section.has("columns") {
        payments_section.serde::<PaymentColumns>("columns")
    } else {
        Some(PaymentColumns::default())
    };
    if let Some(columns) = &payment_columns {
        check_payment_columns(root.problems(), columns);
    }
    let concurrency = payments_section
        .has("concurrency")
        .then(|| payments_section.u64_in("concurrency", 1, 200, 1))
        .and_then(|n| usize::try_from(n).ok())
        .and_then(std::num::NonZeroUsize::new);
    payments_section.finish();

    let backup = read_backup(&root.section("backup"), &secrets);
    let notify = read_notify(&root.section("notify"), &secrets);
    let logging = read_logging(&root.section("logging"));

    let export = ExportConfig {
        layout: layout?,
        billing: billing?,
        exports_dir,
    };
    Some(Settings {
        file: file.to_path_buf(),
        base_dir: base_dir.to_path_buf(),
        rehearsal,
        alma: alma?,
        import: import?,
        export,
        store: store?,
        bursar: bursar?,
        sent_archive,
        payments: PaymentsConfig {
            drop: payments_drop?,
            prefix,
            columns: payment_columns?,
            archive: payments_archive,
            concurrency,
        },
        backup: backup?,
        notify: notify?,
        logging,
    })
}

/// Why `url` (which starts with http:// or https://) is no address a
/// request can go to: it does not parse, or names no host.
fn web_address(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url.trim()) {
        Ok(parsed) if parsed.host_str().is_some_and(|host| !host.is_empty()) => Ok(()),
        Ok(_) => Err("no host".to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// The payments file's columns as the reader matches them (trimmed,
/// case-insensitive): none blank, and no two settings naming one column,
/// which would read one column's value as another's (a charge amount
/// posted as the paid amount, say).
fn check_payment_columns(problems: &Problems, columns: &PaymentColumns) {
    let defaults = PaymentColumns::default();
    let named = [
        ("emplid", &columns.emplid, &defaults.emplid),
        ("date_paid", &columns.date_paid, &defaults.date_paid),
        ("reference", &columns.reference, &defaults.reference),
        (
            "charge_amount",
            &columns.charge_amount,
            &defaults.charge_amount,
        ),
        ("paid_amount", &columns.paid_amount, &defaults.paid_amount),
        ("item_type", &columns.item_type, &defaults.item_type),
        ("description", &columns.description, &defaults.description),
    ];
    let normal = |name: &str| name.trim_start_matches('\u{feff}').trim().to_lowercase();
    for (index, (key, header, default)) in named.iter().enumerate() {
        let setting = format!("payments.columns.{key}");
        if header.trim().is_empty() {
            problems.add(
                setting,
                format!(
                    "is empty; give the column's header in the payments file, or leave the setting out for {default:?}"
                ),
            );
        } else if let Some((first, _, _)) = named[..index]
            .iter()
            .find(|(_, other, _)| normal(other) == normal(header))
        {
            problems.add(
                setting,
                format!(
                    "{header:?} is also payments.columns.{first}; each setting must name its own column"
                ),
            );
        }
    }
}

/// Values the configuration itself puts in the Bursar's lines must fit
/// their fields, or every export would fail after it was committed: the
/// charge accounts, and the longest term code the term rule gives.
fn check_widths(problems: &Problems, layout: &Layout, rules: &AccountRules, term: &TermRule) {
    let field = |kind| layout.fields().iter().find(|f| f.kind == kind);
    if let Some(field) = field(FieldKind::Account) {
        let accounts = rules
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| (format!("account_rules.rules[{i}].account"), &rule.account))
            .chain([(
                "account_rules.default_account".to_string(),
                &rules.default_account,
            )]);
        for (setting, account) in accounts {
            if account.len() > field.width {
                problems.add(
                    setting,
                    format!(
                        "{account:?} is {} characters, wider than the account field of the Bursar's lines \
                         (bursar_layout.fields[{}], width {}); correct the account or widen the field",
                        account.len(),
                        field.index,
                        field.width
                    ),
                );
            }
        }
    }
    if let Some(field) = field(FieldKind::TermCode) {
        let season = term.seasons.iter().map(|s| s.code.len()).max().unwrap_or(0);
        let longest = term.prefix.len() + 2 + season;
        if longest > field.width {
            problems.add(
                "term_rule",
                format!(
                    "gives term codes of {longest} characters (prefix {:?}, two digits of the year, the \
                     season's code), wider than the term_code field of the Bursar's lines \
                     (bursar_layout.fields[{}], width {}); shorten the prefix or the codes, or widen the field",
                    term.prefix, field.index, field.width
                ),
            );
        }
    }
}

fn read_rehearsal(section: &Section<'_>) -> Option<Rehearsal> {
    let enabled = section.bool_or("enabled", false);
    let scenario = section.string_or("scenario", "day1");
    let page_size = section.u64_in("page_size", 1, 1000, 3);
    section.finish();
    enabled.then(|| Rehearsal {
        scenario,
        page_size: usize::try_from(page_size).unwrap_or(3),
    })
}

fn millis(section: &Section<'_>, key: &str, default: u64) -> Duration {
    Duration::from_millis(section.u64_in(key, 0, 3_600_000, default))
}

fn read_alma(
    section: &Section<'_>,
    secrets: &Secrets,
    rehearsal: bool,
    needs: Needs,
) -> Option<AlmaConfig> {
    let base_url = if rehearsal {
        Some(section.string("base_url").unwrap_or_default())
    } else {
        section.required_string("base_url")
    };
    if let Some(url) = &base_url
        && !url.is_empty()
    {
        let example = "use your region's API host, e.g. https://api-na.hosted.exlibrisgroup.com";
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            section.problem(
                "base_url",
                format!("{url:?} does not start with https://; {example}"),
            );
        } else if let Err(error) = web_address(url) {
            section.problem(
                "base_url",
                format!("{url:?} is not a web address ({error}); {example}"),
            );
        }
    }
    let requests_per_second = section.u32_in("requests_per_second", 1, 25, 10);
    let remaining_floor = section
        .has("remaining_floor")
        .then(|| section.u64_in("remaining_floor", 0, u64::MAX >> 1, 0));
    let timeout = Duration::from_secs(section.u64_in("timeout_seconds", 1, 3600, 120));
    let retry = section.section("retry");
    let defaults = RetryPolicy::default();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let policy = RetryPolicy {
        max_attempts: retry.u32_in("max_attempts", 1, 20, defaults.max_attempts),
        base_delay: millis(&retry, "base_delay_ms", ms(defaults.base_delay)),
        max_delay: millis(&retry, "max_delay_ms", ms(defaults.max_delay)),
        still_preparing_delay: millis(
            &retry,
            "still_preparing_delay_ms",
            ms(defaults.still_preparing_delay),
        ),
        still_preparing_attempts: retry.u32_in(
            "still_preparing_attempts",
            1,
            100,
            defaults.still_preparing_attempts,
        ),
        per_second_429_delay: millis(
            &retry,
            "per_second_429_delay_ms",
            ms(defaults.per_second_429_delay),
        ),
        per_second_429_attempts: retry.u32_in(
            "per_second_429_attempts",
            1,
            100,
            defaults.per_second_429_attempts,
        ),
    };
    retry.finish();
    section.finish();
    let key = if rehearsal {
        Some("rehearsal-key".to_string())
    } else if needs.alma {
        secrets.require(
            secrets::ALMA_API_KEY,
            "the Alma API key",
            section.problems(),
        )
    } else {
        Some(secrets.get(secrets::ALMA_API_KEY).unwrap_or_default())
    };
    let key = ApiKey::new(key?);
    if needs.alma
        && let Some(problem) = key.problem()
    {
        // Said with the other problems, before the store is opened.
        section.problems().add(secrets::ALMA_API_KEY, problem);
        return None;
    }
    let mut config = AlmaConfig::new(base_url?, key);
    config.requests_per_second = requests_per_second;
    config.remaining_floor = remaining_floor;
    config.timeout = timeout;
    config.retry = policy;
    Some(config)
}

macro_rules! columns {
    ($section:expr, $ty:ident, [$($field:ident),* $(,)?]) => {{
        let section = $section;
        let default = $ty::default();
        let columns = $ty {
            $($field: section.string(stringify!($field)).unwrap_or(default.$field),)*
        };
        check_report_columns(&section, &[$((stringify!($field), columns.$field.as_str()),)*]);
        section.finish();
        columns
    }};
}

/// A report's column headings as the reader matches them (exactly): none
/// blank, and no two settings naming one heading, which would read one
/// column as another (the remaining amount as the original, say). The
/// since-filter column is a filter expression, not a heading.
fn check_report_columns(section: &Section<'_>, named: &[(&str, &str)]) {
    let headings: Vec<&(&str, &str)> = named
        .iter()
        .filter(|(key, _)| *key != "since_filter_column")
        .collect();
    for (index, (key, heading)) in headings.iter().enumerate() {
        if heading.trim().is_empty() {
            section.problem(
                key,
                "is empty; give the heading of the report's column, or leave the setting out for the default",
            );
        } else if let Some((first, _)) =
            headings[..index].iter().find(|(_, other)| other == heading)
        {
            section.problem(
                key,
                format!(
                    "{heading:?} is also the {first} column; each setting must name its own column"
                ),
            );
        }
    }
}

fn read_columns(section: &Section<'_>) -> ReportColumns {
    let fines = columns!(
        section.section("fines"),
        FineColumns,
        [
            comment,
            created,
            fine_id,
            status,
            fee_type,
            status_date,
            author,
            barcode,
            call_number,
            due_date,
            due_time,
            loan_id,
            loan_date,
            loan_time,
            return_date,
            return_time,
            title,
            patron_id,
            location_code,
            original_amount,
            remaining_amount,
            since_filter_column,
        ]
    );
    let transactions = columns!(
        section.section("transactions"),
        TransactionColumns,
        [
            fine_id,
            created,
            transaction_id,
            transaction_type,
            note,
            loan_id,
            patron_id,
            amount,
            since_filter_column,
        ]
    );
    let balances = columns!(
        section.section("balances"),
        BalanceColumns,
        [patron_id, balance]
    );
    section.finish();
    ReportColumns {
        fines,
        transactions,
        balances,
    }
}

fn read_import(root: &Section<'_>) -> Option<ImportConfig> {
    let reports = root.section("reports");
    let fines = reports.required_string("fines");
    let transactions = reports.required_string("transactions");
    let balances = reports.required_string("balances");
    let since_section = reports.section("since");
    let mode = since_section.choice("mode", &["incremental", "fixed"], "incremental");
    let since = if mode == "fixed" {
        since_section.required_string("date").and_then(|text| {
            match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
                Ok(date) => Some(SinceMode::Fixed(date)),
                Err(_) => {
                    since_section.problem("date", format!("{text:?} is not a date YYYY-MM-DD"));
                    None
                }
            }
        })
    } else {
        if since_section.has("date") {
            since_section.problem("date", "is only used with mode = \"fixed\"");
        }
        Some(SinceMode::Incremental {
            overlap_days: since_section.u32_in("overlap_days", 0, 366, 7),
            full_sweep_days: since_section.u32_in("full_sweep_days", 1, 3660, 30),
        })
    };
    since_section.finish();
    let columns = read_columns(&reports.section("columns"));
    reports.finish();

    let import = root.section("import");
    let ignored_fines: BTreeSet<FineId> = import
        .strings("ignore_fines")
        .into_iter()
        .map(FineId::new)
        .collect();
    let desk = import.choice("desk_payments", &["report", "reverse"], "report");
    let desk_payments = if desk == "reverse" {
        DeskPaymentPolicy::Reverse
    } else {
        DeskPaymentPolicy::Report
    };
    let posted_marker = import.string_or("posted_marker", "Paid to bursar on");
    if posted_marker.trim().is_empty() {
        import.problem(
            "posted_marker",
            "is empty; every Alma payment would count as posted by the sync",
        );
    }
    import.finish();

    let account_rules = if root.has("account_rules") {
        root.serde::<AccountRules>("account_rules")
    } else {
        root.section("account_rules");
        Some(AccountRules::default())
    };
    if let Some(rules) = &account_rules
        && let Err(error) = rules.validate()
    {
        root.library_problem("account_rules", &error.to_string());
    }
    Some(ImportConfig {
        paths: ReportPaths {
            fines: fines?,
            transactions: transactions?,
            balances: balances?,
        },
        columns,
        since: since?,
        settings: ImportSettings {
            ignored_fines,
            account_rules: account_rules?,
            desk_payments,
            posted_marker,
        },
    })
}

fn read_billing(root: &Section<'_>) -> Option<BillingRules> {
    let due_date = if root.has("due_date") {
        root.serde::<DueDateRule>("due_date")
    } else {
        root.section("due_date");
        Some(DueDateRule::default())
    };
    if let Some(rule) = &due_date
        && let Err(error) = rule.validate()
    {
        root.library_problem("due_date", &error.to_string());
    }
    let term = if root.has("term_rule") {
        root.serde::<TermRule>("term_rule")
    } else {
        root.section("term_rule");
        Some(TermRule::default())
    };
    if let Some(rule) = &term
        && let Err(error) = rule.validate()
    {
        root.library_problem("term_rule", &error.to_string());
    }
    Some(BillingRules {
        due_date: due_date?,
        term: term?,
    })
}

fn read_layout(root: &Section<'_>) -> Option<Layout> {
    let config = if root.has("bursar_layout") {
        root.serde::<LayoutConfig>("bursar_layout")?
    } else {
        root.section("bursar_layout");
        LayoutConfig::default()
    };
    match Layout::new(config) {
        Ok(layout) => Some(layout),
        Err(bursar_format::LayoutError::Setting { setting, message }) => {
            root.problems()
                .add(format!("bursar_layout.{setting}"), message);
            None
        }
    }
}

fn read_store(section: &Section<'_>, secrets: &Secrets, needs: Needs) -> Option<StoreConfig> {
    let kind = section.choice("kind", &["sqlite", "mongodb"], "sqlite");
    let store = if kind == "mongodb" {
        let uri = section.required_string("uri");
        let database = section.required_string("database");
        if let Some(uri) = &uri
            && !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://"))
        {
            section.problem("uri", "must start with mongodb:// or mongodb+srv://");
        }
        if let Some(uri) = &uri
            && uri.contains('@')
            && !uri.contains("{password}")
            && uri
                .split('@')
                .next()
                .is_some_and(|userinfo| userinfo.matches(':').count() > 1)
        {
            section.problem(
                "uri",
                "contains a password; write {password} in its place and set ABS_MONGODB_PASSWORD",
            );
        }
        let uri = match uri {
            Some(uri) if uri.contains("{password}") => {
                let password = if needs.store {
                    secrets.require(
                        secrets::MONGODB_PASSWORD,
                        "the MongoDB password for store.uri's {password}",
                        section.problems(),
                    )
                } else {
                    Some(secrets.get(secrets::MONGODB_PASSWORD).unwrap_or_default())
                };
                password.map(|p| {
                    let encoded = percent_encoding::utf8_percent_encode(
                        &p,
                        percent_encoding::NON_ALPHANUMERIC,
                    );
                    uri.replace("{password}", &encoded.to_string())
                })
            }
            other => other,
        };
        if section.has("path") {
            section.problem("path", "is only used with kind = \"sqlite\"");
        }
        Some(StoreConfig::Mongo(MongoConfig {
            uri: uri?,
            database: database?,
        }))
    } else {
        for key in ["uri", "database"] {
            if section.has(key) {
                section.problem(key, "is only used with kind = \"mongodb\"");
            }
        }
        Some(StoreConfig::Sqlite(
            section.path_or("path", "alma-bursar-sync.sqlite3"),
        ))
    };
    section.finish();
    store
}

fn read_drop(
    section: &Section<'_>,
    secrets: &Secrets,
    needed: bool,
    (password_name, passphrase_name): (&str, &str),
) -> Option<DropConfig> {
    let kind = section.choice("kind", &["sftp", "local"], "sftp");
    let drop = if kind == "local" {
        let folder = section.required_path("folder");
        let archive = section.optional_path("archive_folder");
        for key in ["host", "port", "user", "auth", "key_file", "known_hosts"] {
            if section.has(key) {
                section.problem(key, "is only used with kind = \"sftp\"");
            }
        }
        folder.map(|folder| DropConfig::Local { folder, archive })
    } else {
        let host = section.required_string("host");
        let port = section.port("port", SftpConfig::DEFAULT_PORT);
        let user = section.required_string("user");
        let known_hosts = section.required_path("known_hosts");
        let folder = section.required_string("folder");
        let archive = section.string("archive_folder");
        let auth_kind = section.choice("auth", &["password", "key"], "password");
        let connect = section.u64_in("connect_timeout_seconds", 1, 3600, 30);
        let io = section.u64_in("io_timeout_seconds", 1, 3600, 120);
        let auth = if auth_kind == "key" {
            let key_file = section.required_path("key_file");
            let passphrase = secrets.get(passphrase_name);
            key_file.map(|path| SftpAuth::PrivateKey { path, passphrase })
        } else {
            if section.has("key_file") {
                section.problem("key_file", "is only used with auth = \"key\"");
            }
            let password = if needed {
                secrets.require(
                    password_name,
                    &format!("the password for {}", section.name("user")),
                    section.problems(),
                )
            } else {
                Some(secrets.get(password_name).unwrap_or_default())
            };
            password.map(SftpAuth::Password)
        };
        match (host, user, known_hosts, folder, auth) {
            (Some(host), Some(user), Some(known_hosts), Some(folder), Some(auth)) => {
                let mut config = SftpConfig::new(host, user, auth, known_hosts, folder);
                config.port = port;
                config.connect_timeout = Duration::from_secs(connect);
                config.io_timeout = Duration::from_secs(io);
                Some(DropConfig::Sftp { config, archive })
            }
            _ => None,
        }
    };
    section.finish();
    drop
}

fn read_backup(section: &Section<'_>, secrets: &Secrets) -> Option<BackupConfig> {
    let mut config = BackupConfig::new(section.path_or("local_dir", "backups"));
    if let Some(work) = section.optional_path("work_dir") {
        config = config.with_work_dir(work);
    }
    let keep = section.u64_in("keep", 1, 10_000, backup::DEFAULT_KEEP as u64);
    config = config.with_keep(usize::try_from(keep).unwrap_or(backup::DEFAULT_KEEP));
    let s3_section = section.section("s3");
    if s3_section.is_present() {
        let bucket = s3_section.required_string("bucket");
        let region = s3_section.string_or("region", "us-east-1");
        let mut s3 = S3Config::new(bucket.clone().unwrap_or_default(), region)
            .with_prefix(s3_section.string_or("prefix", "alma-bursar-sync/"));
        if let Some(endpoint) = s3_section.string("endpoint") {
            s3 = s3.with_endpoint(endpoint);
        }
        // From the environment or the secrets file; without either, the
        // S3 client looks for an AWS profile.
        if let (Some(access_key), Some(secret_key)) = (
            secrets.get(secrets::S3_ACCESS_KEY),
            secrets.get(secrets::S3_SECRET_KEY),
        ) {
            s3 = s3.with_credentials(backup::S3Credentials {
                access_key,
                secret_key,
            });
        }
        if s3_section.has("path_style") {
            s3 = s3.with_path_style(s3_section.bool_or("path_style", false));
        }
        s3 = s3.with_timeout(Duration::from_secs(s3_section.u64_in(
            "timeout_seconds",
            1,
            86_400,
            300,
        )));
        if bucket.is_some() {
            match s3.validate() {
                Ok(()) => {}
                Err(backup::S3Error::InvalidConfig { setting, problem }) => {
                    section.problems().add(setting, problem);
                }
                Err(other) => section.problems().add("backup.s3", other.to_string()),
            }
        }
        config = config.with_s3(s3);
    }
    s3_section.finish();
    section.finish();
    Some(config)
}

fn read_notify(section: &Section<'_>, secrets: &Secrets) -> Option<NotifyConfig> {
    let webhook_url = section
        .string("webhook_url")
        .filter(|u| !u.is_empty())
        .or_else(|| secrets.get(secrets::WEBHOOK_URL));
    if let Some(url) = &webhook_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            section.problem(
                "webhook_url",
                format!("{url:?} does not start with https://"),
            );
        } else if let Err(error) = web_address(url) {
            section.problem(
                "webhook_url",
                format!(
                    "{url:?} is not a web address ({error}); copy it whole from the chat service"
                ),
            );
        }
    }
    let timeout = Duration::from_secs(section.u64_in("timeout_seconds", 1, 300, 10));
    section.finish();
    Some(NotifyConfig {
        webhook_url,
        timeout,
    })
}

fn read_logging(section: &Section<'_>) -> LoggingConfig {
    let dir = section.path_or("dir", "logs");
    let level = section.string_or("level", "info");
    // A bare word is a valid filter (every event of that target), so a
    // misspelt level would be taken and silence the log: outside
    // `target=level` directives, only level names are accepted.
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let bare_word_not_a_level = level.split(',').any(|directive| {
        let directive = directive.trim();
        !directive.contains(['=', '[']) && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(directive))
    });
    if bare_word_not_a_level || tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        section.problem(
            "level",
            format!(
                "{level:?} is not a log level or filter; use error, warn, info, debug or trace"
            ),
        );
    }
    let keep_days = section.u64_in("keep_days", 1, 3660, 90);
    section.finish();
    LoggingConfig {
        dir,
        level,
        keep_days: usize::try_from(keep_days).unwrap_or(90),
    }
}
