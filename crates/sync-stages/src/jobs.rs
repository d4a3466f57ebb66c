//! Every stage runs as a job: recorded In Progress before any work, and
//! finished as Success or Failed with its counts, problems and error.

use std::future::Future;

use chrono::{DateTime, Utc};
use fine_store::FineStore;
use sync_core::records::{Job, JobKind, JobStatus};

use crate::error::StageError;

/// What a stage reports back for its job record.
pub trait JobOutcome {
    fn counts(&self) -> Vec<(String, u64)>;
    fn problems(&self) -> Vec<String>;
    /// Why a stage that ran to its end still failed (Direction 2: nothing
    /// succeeded and Alma failed); the job is then recorded Failed with it.
    fn failure(&self) -> Option<String> {
        None
    }
}

/// Runs `work` as a job of `kind`; the job record is finished whatever
/// the outcome. A failure to record the finish is logged, and the stage's
/// own result is returned, since it is the more useful of the two.
pub async fn run_as_job<T, F, Fut>(
    store: &dyn FineStore,
    kind: JobKind,
    now: DateTime<Utc>,
    work: F,
) -> Result<(Job, T), StageError>
where
    T: JobOutcome,
    F: FnOnce(Job) -> Fut,
    Fut: Future<Output = Result<T, StageError>>,
{
    let job = store.start_job(kind, now).await?;
    let result = work(job.clone()).await;
    let mut finished = job;
    finished.finished_at = Some(Utc::now().max(now));
    match &result {
        Ok(outcome) => {
            finished.counts = outcome.counts();
            finished.problems = outcome.problems();
            finished.error = outcome.failure();
            finished.status = if finished.error.is_some() {
                JobStatus::Failed
            } else {
                JobStatus::Success
            };
        }
        Err(error) => {
            finished.status = JobStatus::Failed;
            finished.error = Some(error.to_string());
        }
    }
    if let Err(error) = store.finish_job(&finished).await {
        tracing::error!(job = finished.seq, %error, "could not record the end of the job");
        if result.is_ok() {
            return Err(error.into());
        }
    }
    result.map(|outcome| (finished, outcome))
}
