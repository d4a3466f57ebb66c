//! `abs-bench profile`: the import and export stages taken apart into
//! their steps, each timed with the resident memory after it, to say where
//! the time and the memory of `direction1` go.
//!
//! The steps are the public pieces the stages are made of (the Analytics
//! readers, the store's reads, the pure planners, the store's writes), run
//! in the stages' order. The step that the stage keeps private (loading
//! what the store knows) is re-done here the same way. No job is recorded.

use std::time::Instant;

use chrono::{NaiveDateTime, TimeDelta};
use fine_store::FineStore;
use sync_core::rules::opening::ReportedTransaction;
use sync_stages::export::{render_export, write_file_once};
use sync_stages::export_plan::{plan_commit, plan_decisions};
use sync_stages::import::{load_credit_sources, load_ledgers, load_payment_records, reports_of};
use sync_stages::import_plan::{KnownState, plan_import};

use crate::error::BenchError;
use crate::measure::{memory, mib, reset_peak};
use crate::rig::{OpenStore, StoreChoice, analytics, export_config, import_config};
use crate::serve::ServerChild;
use crate::synth::{Institution, Size};

struct Steps {
    out: String,
    last: Instant,
}

impl Steps {
    fn new() -> Steps {
        reset_peak();
        Steps {
            out: String::from("| step | time | RSS after | peak so far |\n|---|---:|---:|---:|\n"),
            last: Instant::now(),
        }
    }

    fn step(&mut self, name: &str) {
        let m = memory();
        let line = format!(
            "| {name} | {:.2} s | {:.0} MiB | {:.0} MiB |\n",
            self.last.elapsed().as_secs_f64(),
            mib(m.current_kib),
            mib(m.peak_kib)
        );
        eprint!("{line}");
        self.out.push_str(&line);
        self.last = Instant::now();
    }
}

async fn import_steps(
    steps: &mut Steps,
    store: &dyn FineStore,
    analytics: &alma_analytics::Analytics,
    now: NaiveDateTime,
    label: &str,
) -> Result<(), BenchError> {
    let config = import_config(1);
    let columns = &config.columns;
    let transactions = analytics
        .all_transactions_into::<ReportedTransaction>(
            &config.paths.transactions,
            None,
            &columns.transactions,
        )
        .await
        .map_err(sync_stages::StageError::from)?;
    steps.step(&format!("{label}: fetch + parse All Transactions"));
    let fines = analytics
        .all_fines(&config.paths.fines, None, &columns.fines)
        .await
        .map_err(sync_stages::StageError::from)?;
    steps.step(&format!("{label}: fetch + parse All Fines"));
    let balances = analytics
        .all_balances(&config.paths.balances, &columns.balances)
        .await
        .map_err(sync_stages::StageError::from)?;
    steps.step(&format!("{label}: fetch + parse All User Balances"));
    let reports = reports_of(fines, transactions, balances);
    steps.step(&format!("{label}: rows to records"));
    let ledgers = load_ledgers(store, &reports).await?;
    steps.step(&format!(
        "{label}: store.ledgers(every fine id) + ledgers_by_loan"
    ));
    let credit_sources = load_credit_sources(store, &reports).await?;
    steps.step(&format!("{label}: store.known_credit_sources"));
    let payment_records = load_payment_records(store, &reports, &ledgers).await?;
    steps.step(&format!(
        "{label}: store.payment_records_of_fines (every fine with a payment)"
    ));
    let known = KnownState {
        patrons: store.patrons(&reports.patron_ids()).await?,
        ledgers,
        credit_sources,
        payment_records,
    };
    steps.step(&format!("{label}: store.patrons"));
    let plan = plan_import(reports, known, &config.settings, now.and_utc());
    steps.step(&format!("{label}: plan_import"));
    let applied = format!(
        "{label}: store.apply ({} fines, {} Alma txns, {} lines, {} Bursar txns)",
        plan.changes.all_fines().count(),
        plan.changes.all_alma_transactions().count(),
        plan.changes.all_account_lines().count(),
        plan.changes.all_bursar_transactions().count()
    );
    store.apply(plan.changes).await?;
    steps.step(&applied);
    steps.step(&format!("{label}: drop everything"));
    Ok(())
}

pub async fn run(size: Size, store: StoreChoice, import_only: bool) -> Result<String, BenchError> {
    let server = ServerChild::serve_alma(&size, "1")?;
    let tmp = tempfile::tempdir().map_err(|e| BenchError::io("creating a work folder", ".", e))?;
    let opened = OpenStore::open(&store, tmp.path(), "profile").await?;
    let store = opened.store.as_ref();
    let analytics = analytics(&server.uri, 1000)?;
    let export = export_config(tmp.path().join("exports"));
    let day1 = Institution::day1();
    let now = day1.and_utc();

    let mut steps = Steps::new();
    steps.step("start");
    import_steps(&mut steps, store, &analytics, day1, "import").await?;
    if import_only {
        opened.clean_up().await?;
        return Ok(steps.out);
    }

    let pending = store.fines_with_pending_alma().await?;
    let ledgers = store.ledgers(&pending).await?;
    steps.step(&format!(
        "export: store.fines_with_pending_alma + ledgers ({} ledgers)",
        ledgers.len()
    ));
    let decisions = plan_decisions(&ledgers, now);
    steps.step("export: plan_decisions");
    drop(ledgers);
    store.apply(decisions.changes).await?;
    steps.step("export: store.apply(decisions)");
    let items = store.pending_export().await?;
    steps.step(&format!(
        "export: store.pending_export ({} items)",
        items.len()
    ));
    let commit = plan_commit(&items, 1, day1.date(), now, &export.billing, &export.layout)
        .map_err(|e| BenchError::Check(format!("plan_commit: {e}")))?;
    steps.step("export: plan_commit");
    if let Some(commit) = commit {
        store.commit_export(&commit).await?;
        steps.step("export: store.commit_export");
        let files = render_export(store, &commit.export, &export).await?;
        steps.step("export: render_export (store.export_items + render)");
        for (name, bytes) in files {
            write_file_once(&export.exports_dir, &name, &bytes)?;
        }
        steps.step("export: write files");
    }
    drop(items);
    import_steps(
        &mut steps,
        store,
        &analytics,
        day1 + TimeDelta::hours(1),
        "re-run import",
    )
    .await?;
    opened.clean_up().await?;
    drop(server);
    Ok(format!(
        "profile: seed {}, {} fines, {} transactions, {} patrons\n\n{}",
        size.seed, size.fines, size.transactions, size.patrons, steps.out
    ))
}
