#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Crash safety of Direction 1: the stages stopped at each boundary
//! between their committed steps (fail points), then the day re-run. In a
//! test binary of its own because fail points are process-wide.

mod common;

use common::*;
use sync_core::rules::payments::DeskPaymentPolicy;
use sync_stages::StageError;

/// Runs day 1 with the stage stopped at `point`, then re-runs the whole
/// day; the files and the store must equal those of an uninterrupted run.
async fn interrupted_day_equals_clean_day(point: &str) {
    let clean = Rig::new(DeskPaymentPolicy::Report).await;
    clean.day("day1", at(DAY1)).await;

    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.serve("day1");
    let stopped = {
        fail::cfg(point, "return").unwrap();
        let result = async {
            rig.import(at(DAY1)).await?;
            rig.export(at(DAY1)).await?;
            rig.send(at(DAY1)).await
        }
        .await;
        fail::remove(point);
        result
    };
    assert!(
        matches!(stopped, Err(StageError::Interrupted(ref p)) if p == point),
        "{stopped:?}"
    );
    rig.day("day1", at(DAY1)).await;

    assert_eq!(rig.files("bursar"), clean.files("bursar"), "{point}");
    assert_eq!(rig.files("archive"), clean.files("archive"), "{point}");
    assert_eq!(
        rig.files("remote-archive"),
        clean.files("remote-archive"),
        "{point}"
    );
    assert_eq!(rig.records().await, clean.records().await, "{point}");
}

/// Fail points are process-wide: each test holds the scenario lock, so
/// the tests of this binary run one at a time.
macro_rules! boundary {
    ($($name:ident => $point:literal),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let scenario = fail::FailScenario::setup();
            interrupted_day_equals_clean_day($point).await;
            scenario.teardown();
        }
    )*};
}

boundary! {
    import_stopped_before_its_apply => "import-before-apply",
    import_stopped_after_its_apply => "import-after-apply",
    export_stopped_after_its_decisions => "export-after-decisions",
    export_stopped_after_its_commit => "export-after-commit",
    export_stopped_after_writing_a_file => "export-after-file",
    send_stopped_after_an_upload => "send-after-upload",
    send_stopped_before_marking_sent => "send-before-mark",
}
