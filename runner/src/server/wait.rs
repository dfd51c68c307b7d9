//! `?wait=SECONDS`: a request that starts (or joins) a run answers with the
//! run's report once it finishes or pauses, instead of 202 and polling.
//! Woken by the drive's end (`App::settled`), never a poll.

use super::App;
use crate::operations as ops;
use crate::scheduler::RunReport;
use std::time::Duration;

/// The longest wait a request may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// The `wait` parameter of a query string: `None` when absent; an error
/// naming it when it is not 0 to [`MAX_WAIT`] seconds.
pub fn param(query: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut out = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key != "wait" {
            continue;
        }
        let secs = value
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && (0.0..=MAX_WAIT.as_secs_f64()).contains(s));
        let Some(secs) = secs else {
            let shown: String = value.chars().take(32).collect();
            return Err(format!(
                "`wait` must be a number of seconds from 0 to {}, not `{}`",
                MAX_WAIT.as_secs(),
                crate::inert::line(&shown)
            ));
        };
        out = Some(Duration::from_secs_f64(secs));
    }
    Ok(out)
}

/// The run's report (as `GET /api/v1/runs/{id}` gives it) once no task
/// drives it, or `None` if it is still driven at the deadline.
pub async fn report(app: &App, run_id: &str, wait: Duration) -> Option<RunReport> {
    if !app.settled(run_id, wait).await {
        return None;
    }
    match ops::status(app.journal(), run_id) {
        Ok(report) => Some(report),
        Err(e) => {
            tracing::warn!(run_id, error = %e, "cannot read the report a request waited for");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_seconds_within_the_cap_and_anything_else_is_named() {
        assert_eq!(param(None), Ok(None));
        assert_eq!(param(Some("a=1")), Ok(None));
        assert_eq!(
            param(Some("wait=2.5")),
            Ok(Some(Duration::from_millis(2500)))
        );
        assert_eq!(param(Some("wait=0")), Ok(Some(Duration::ZERO)));
        for bad in [
            "wait=", "wait=-1", "wait=301", "wait=NaN", "wait=inf", "wait=1e9",
        ] {
            let e = param(Some(bad)).unwrap_err();
            assert!(
                e.starts_with("`wait` must be a number of seconds from 0 to 300"),
                "{bad}: {e}"
            );
        }
        let e = param(Some("wait=%E2%80%AEevil")).unwrap_err();
        assert!(!e.contains('\u{202e}'), "{e}");
    }
}
