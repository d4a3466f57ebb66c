//! Direction 1, step 1: import from Alma Analytics (SPEC 4).
//!
//! Steps, each all-or-nothing: record the job; fetch the three reports
//! completely (a failure on any page writes nothing); load what the store
//! knows of the records they touch; plan the merge; apply it as one change
//! set; finish the job. A crash anywhere before the apply leaves the store
//! as it was, and after it the re-run plans nothing new.

use std::collections::BTreeSet;

use alma_analytics::{Analytics, BalanceRow, FineRow, Report, ReportColumns};
use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Utc};
use fail::fail_point;
use fine_store::{FineLedger, FineStore};
use sync_core::records::{AlmaTxnType, Fine, FineId, Job, JobKind, Patron, PaymentRecord};
use sync_core::rules::opening::ReportedTransaction;

use crate::error::StageError;
use crate::import_plan::{ImportCounts, ImportSettings, KnownState, Problem, Reports, plan_import};
use crate::jobs::{JobOutcome, run_as_job};

/// Where the reports live in the Analytics catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportPaths {
    pub fines: String,
    pub transactions: String,
    pub balances: String,
}

/// Which rows the fines and transactions reports are asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinceMode {
    /// Everything since a fixed date, on every run (the old tool's way).
    Fixed(NaiveDate),
    /// Since the start of the last successful import minus an overlap,
    /// and everything (no filter) when the last full sweep is more than
    /// `full_sweep_days` old or there was none.
    Incremental {
        overlap_days: u32,
        full_sweep_days: u32,
    },
}

impl Default for SinceMode {
    fn default() -> Self {
        SinceMode::Incremental {
            overlap_days: 7,
            full_sweep_days: 30,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportConfig {
    pub paths: ReportPaths,
    pub columns: ReportColumns,
    pub since: SinceMode,
    pub settings: ImportSettings,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The since-date sent to Alma; None for a full sweep.
    pub since: Option<NaiveDateTime>,
    /// The day (days since 1970-01-01) of the last full sweep, this one
    /// included: carried from job to job so the next import knows it.
    pub last_full_sweep_day: Option<u64>,
    pub rows_fines: u64,
    pub rows_transactions: u64,
    pub rows_balances: u64,
    pub counts: ImportCounts,
    pub problems: Vec<Problem>,
}

const FULL_SWEEP_COUNT: &str = "last_full_sweep_day";

impl JobOutcome for ImportOutcome {
    fn counts(&self) -> Vec<(String, u64)> {
        let mut counts = vec![
            ("rows_fines".to_string(), self.rows_fines),
            ("rows_transactions".to_string(), self.rows_transactions),
            ("rows_balances".to_string(), self.rows_balances),
        ];
        counts.extend(self.counts.named());
        if let Some(day) = self.last_full_sweep_day {
            counts.push((FULL_SWEEP_COUNT.to_string(), day));
        }
        counts
    }

    fn problems(&self) -> Vec<String> {
        self.problems.iter().map(ToString::to_string).collect()
    }
}

fn epoch_day(date: NaiveDate) -> u64 {
    let days = (date - NaiveDate::default()).num_days();
    u64::try_from(days).unwrap_or(0)
}

/// The since-date of this run and the full-sweep day to record.
fn choose_since(
    mode: &SinceMode,
    last: Option<&Job>,
    now: DateTime<Utc>,
) -> (Option<NaiveDateTime>, Option<u64>) {
    let today = now.date_naive();
    match mode {
        SinceMode::Fixed(date) => (date.and_hms_opt(0, 0, 0), None),
        SinceMode::Incremental {
            overlap_days,
            full_sweep_days,
        } => {
            let last_sweep = last.and_then(|job| {
                job.counts
                    .iter()
                    .find(|(name, _)| name == FULL_SWEEP_COUNT)
                    .map(|(_, day)| *day)
            });
            let sweep_due = last_sweep.is_none_or(|day| {
                epoch_day(today).saturating_sub(day) >= u64::from(*full_sweep_days)
            });
            match last {
                Some(job) if !sweep_due => {
                    let since = job.started_at.naive_utc() - Days::new(u64::from(*overlap_days));
                    (Some(since), last_sweep)
                }
                _ => (None, Some(epoch_day(today))),
            }
        }
    }
}

/// Fetches the three reports completely, transactions first as the spec
/// orders them. Nothing is written until all three are in.
async fn fetch_reports(
    analytics: &Analytics,
    config: &ImportConfig,
    since: Option<NaiveDateTime>,
) -> Result<Reports, StageError> {
    let columns = &config.columns;
    let transactions = analytics
        .all_transactions_into::<ReportedTransaction>(
            &config.paths.transactions,
            since,
            &columns.transactions,
        )
        .await?;
    let fines = analytics
        .all_fines(&config.paths.fines, since, &columns.fines)
        .await?;
    let balances = analytics
        .all_balances(&config.paths.balances, &columns.balances)
        .await?;
    Ok(reports_of(fines, transactions, balances))
}

/// The three fetched reports as the import plan takes them. Public so the
/// benchmark, which fetches them one by one to time each, builds them the
/// same way.
pub fn reports_of(
    fines: Report<FineRow>,
    transactions: Report<ReportedTransaction>,
    balances: Report<BalanceRow>,
) -> Reports {
    Reports {
        fines: fines.rows.into_iter().map(Fine::from).collect(),
        transactions: transactions.rows,
        balances: balances.rows.into_iter().map(Patron::from).collect(),
    }
}

/// Loads what the store knows of the records the reports touch.
async fn load_known(store: &dyn FineStore, reports: &Reports) -> Result<KnownState, StageError> {
    let ledgers = load_ledgers(store, reports).await?;
    Ok(KnownState {
        patrons: store.patrons(&reports.patron_ids()).await?,
        credit_sources: load_credit_sources(store, reports).await?,
        payment_records: load_payment_records(store, reports, &ledgers).await?,
        ledgers,
    })
}

/// The ledgers of every fine the reports mention and of every fine on the
/// loans of their credit fines. Public, like the two below, so the
/// benchmark can time the steps of [`load_known`] one by one.
pub async fn load_ledgers(
    store: &dyn FineStore,
    reports: &Reports,
) -> Result<Vec<FineLedger>, StageError> {
    let mut ledgers = store.ledgers(&reports.fine_ids()).await?;
    let loans = reports.credit_loans();
    if !loans.is_empty() {
        let loaded: BTreeSet<_> = ledgers.iter().map(|l| l.fine.id.clone()).collect();
        let on_loans = store.ledgers_by_loan(&loans).await?;
        ledgers.extend(
            on_loans
                .into_iter()
                .filter(|l| !loaded.contains(&l.fine.id)),
        );
    }
    Ok(ledgers)
}

/// The reports' credit fines that were already taken in (SPEC 4.5).
pub async fn load_credit_sources(
    store: &dyn FineStore,
    reports: &Reports,
) -> Result<BTreeSet<FineId>, StageError> {
    Ok(store
        .known_credit_sources(&reports.credit_fine_ids())
        .await?
        .into_iter()
        .collect())
}

/// The payment records of every fine with an Alma payment to reconcile:
/// new in the reports, or still pending in the store (SPEC 4.7).
pub async fn load_payment_records(
    store: &dyn FineStore,
    reports: &Reports,
    ledgers: &[FineLedger],
) -> Result<Vec<PaymentRecord>, StageError> {
    let fines_with_payments: BTreeSet<&FineId> = reports
        .transactions
        .iter()
        .filter(|t| t.kind == AlmaTxnType::Payment)
        .map(|t| &t.fine_id)
        .chain(
            ledgers
                .iter()
                .filter(|l| {
                    l.alma
                        .iter()
                        .any(|t| t.pending && t.kind == AlmaTxnType::Payment)
                })
                .map(|l| &l.fine.id),
        )
        .collect();
    let fines: Vec<FineId> = fines_with_payments.into_iter().cloned().collect();
    Ok(store.payment_records_of_fines(&fines).await?)
}

/// Runs the import stage.
pub async fn run_import(
    store: &dyn FineStore,
    analytics: &Analytics,
    config: &ImportConfig,
    now: DateTime<Utc>,
) -> Result<(Job, ImportOutcome), StageError> {
    let last = store.last_successful_job(JobKind::AlmaImport).await?;
    let (since, last_full_sweep_day) = choose_since(&config.since, last.as_ref(), now);
    run_as_job(store, JobKind::AlmaImport, now, |_job| async move {
        tracing::info!(since = ?since, "fetching the Analytics reports");
        let reports = fetch_reports(analytics, config, since).await?;
        let known = load_known(store, &reports).await?;
        let rows_fines = reports.fines.len() as u64;
        let rows_transactions = reports.transactions.len() as u64;
        let rows_balances = reports.balances.len() as u64;
        let plan = plan_import(reports, known, &config.settings, now);
        fail_point!("import-before-apply", |_| Err(crate::error::interrupted(
            "import-before-apply"
        )));
        store.apply(plan.changes).await?;
        fail_point!("import-after-apply", |_| Err(crate::error::interrupted(
            "import-after-apply"
        )));
        for problem in &plan.problems {
            tracing::warn!(%problem, "import problem");
        }
        Ok(ImportOutcome {
            since,
            last_full_sweep_day,
            rows_fines,
            rows_transactions,
            rows_balances,
            counts: plan.counts,
            problems: plan.problems,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::records::JobStatus;

    fn job(started: &str, sweep_day: Option<u64>) -> Job {
        Job {
            seq: 1,
            kind: JobKind::AlmaImport,
            status: JobStatus::Success,
            started_at: NaiveDateTime::parse_from_str(started, "%Y-%m-%dT%H:%M:%S")
                .unwrap()
                .and_utc(),
            finished_at: None,
            counts: sweep_day
                .map(|d| vec![(FULL_SWEEP_COUNT.to_string(), d)])
                .unwrap_or_default(),
            problems: vec![],
            error: None,
        }
    }

    #[test]
    fn since_date_choices() {
        let now = NaiveDateTime::parse_from_str("2024-12-10T06:00:00", "%Y-%m-%dT%H:%M:%S")
            .unwrap()
            .and_utc();
        let today = epoch_day(now.date_naive());
        let mode = SinceMode::default();
        let dt = |s| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap();
        // First import ever: a full sweep.
        assert_eq!(choose_since(&mode, None, now), (None, Some(today)));
        // Recent sweep: since the last start minus the 7-day overlap.
        let recent = job("2024-12-06T06:00:00", Some(today - 4));
        assert_eq!(
            choose_since(&mode, Some(&recent), now),
            (Some(dt("2024-11-29T06:00:00")), Some(today - 4))
        );
        // Sweep 30 days old: another full sweep.
        let stale = job("2024-12-06T06:00:00", Some(today - 30));
        assert_eq!(choose_since(&mode, Some(&stale), now), (None, Some(today)));
        // Fixed date, whatever the history.
        let fixed = SinceMode::Fixed(NaiveDate::from_ymd_opt(2017, 1, 1).unwrap());
        assert_eq!(
            choose_since(&fixed, Some(&recent), now),
            (Some(dt("2017-01-01T00:00:00")), None)
        );
    }
}
