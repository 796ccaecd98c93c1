//! Quartz schedules fire while the server runs: a task wakes every 100 ms,
//! starts a PERIODIC run of each unpaused job whose time has come, and
//! computes its next time. It ends with the server.

use std::sync::Arc;
use std::time::Duration;

use super::model::Jobs;
use crate::local::cluster::now_ms;

const TICK: Duration = Duration::from_millis(100);

pub fn start(jobs: Arc<Jobs>) {
    let Ok(rt) = crate::runtime::runtime() else { return };
    let stop = jobs.local.shutdown.clone();
    rt.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(TICK) => fire_due(&jobs),
            }
        }
    });
}

fn fire_due(jobs: &Arc<Jobs>) {
    let now = now_ms() as i64;
    let due: Vec<i64> = {
        let mut g = jobs.lock();
        let mut due = vec![];
        for job in g.jobs.values_mut() {
            if job.next_fire.is_some_and(|t| t <= now) {
                due.push(job.job_id);
                // Firings missed while the server was busy are not made up.
                job.next_fire = job.schedule.as_ref().and_then(|s| s.next_after(now));
            }
        }
        due
    };
    for job_id in due {
        let _ = super::api::trigger(jobs, job_id, "PERIODIC", None, None, None);
    }
}
