//! `import-alma-payments`: Direction 2 (SPEC 7) through
//! `sync_stages::payments::run_payments`, with the payments drop folder
//! opened from the configuration.

use sync_stages::payments::{PaymentsConfig, run_payments};

use crate::context::{Context, open_drop};
use crate::error::AppError;
use crate::stages::{StageReport, summarize_counts};

const STAGE: &str = "import-alma-payments";

pub async fn run(ctx: &mut Context) -> Result<StageReport, AppError> {
    let alma = ctx.alma_client().await?;
    let drop = open_drop(&ctx.settings.payments.drop).map_err(|e| AppError::stage(STAGE, e))?;
    let settings = &ctx.settings.payments;
    let mut config = PaymentsConfig::new(
        settings.prefix.clone(),
        settings.archive.clone(),
        ctx.clock.run_date,
    );
    config.columns = settings.columns.clone();
    config.concurrency = settings.concurrency;
    let (job, outcome) = run_payments(
        ctx.store(),
        &alma,
        drop.folder.as_ref(),
        &config,
        ctx.clock.now,
    )
    .await
    .map_err(|e| AppError::stage(STAGE, e))?;
    if let Some(message) = outcome.failure_message() {
        return Err(AppError::Stage {
            stage: STAGE,
            source: message.into(),
        });
    }
    Ok(StageReport {
        stage: STAGE,
        summary: format!("{}: {}", outcome.file, summarize_counts(&job.counts)),
        problems: job.problems.clone(),
        error: None,
    })
}
