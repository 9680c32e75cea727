//! A machine's live status: what its machine task (`runtime.rs`) has seen of it, published on
//! one `watch` channel per machine. The API's machine views show it as `live`; metrics and the
//! panel read the same channels ([`crate::runtime::Runtime::status`]).
//!
//! It is what the driver says now, not what the plant recorded: the store's machine state
//! (with holds and maintenance) stays the truth for dispatching.

use microfab_drivers::status::{
    DriverStatus, LinkStatus, Progress, ProgressUnit, TemperatureReading,
};
use microfab_drivers::{Condition, DriverEvent};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MachineStatus {
    /// The driver's last reported condition; absent until it reported one.
    pub condition: Option<Condition>,
    /// The run on the machine, from its start to its end as the driver reported them.
    pub job_id: Option<i64>,
    /// How far that run is, where the driver knows.
    pub progress: Option<Progress>,
    /// The link to the machine and its counters, for drivers that have one.
    pub link: Option<LinkStatus>,
    /// The firmware's last temperature report (Marlin).
    pub temperatures: Vec<TemperatureReading>,
    /// When any of the above last changed (milliseconds since the Unix epoch).
    pub updated_ms: i64,
}

/// The machine task's side of the channel: folds the driver's events and snapshots in and
/// tells readers only when something changed.
pub(crate) struct StatusPublisher {
    sender: watch::Sender<MachineStatus>,
    /// The last `JobProgress` since the last `JobStarted` (line-protocol drivers).
    reported_progress: Option<Progress>,
}

impl StatusPublisher {
    pub(crate) fn new(at_ms: i64) -> (StatusPublisher, watch::Receiver<MachineStatus>) {
        let (sender, receiver) = watch::channel(MachineStatus {
            condition: None,
            job_id: None,
            progress: None,
            link: None,
            temperatures: Vec::new(),
            updated_ms: at_ms,
        });
        let publisher = StatusPublisher {
            sender,
            reported_progress: None,
        };
        (publisher, receiver)
    }

    /// Take in an event the driver reported, then its snapshot.
    pub(crate) fn event(&mut self, event: &DriverEvent, driver: DriverStatus, at_ms: i64) {
        match event {
            DriverEvent::JobStarted { .. } => self.reported_progress = None,
            DriverEvent::JobProgress { done, total, .. } => {
                self.reported_progress = Some(Progress {
                    done: *done,
                    total: *total,
                    unit: ProgressUnit::Lines,
                });
            }
            _ => {}
        }
        self.update(driver, at_ms, |status| match event {
            DriverEvent::Condition(condition) => status.condition = Some(condition.clone()),
            DriverEvent::JobStarted { job_id } | DriverEvent::JobProgress { job_id, .. } => {
                status.job_id = Some(*job_id);
            }
            // A late report about another run leaves the current one alone.
            DriverEvent::JobFinished { job_id, .. }
            | DriverEvent::JobFailed { job_id, .. }
            | DriverEvent::JobInterrupted { job_id, .. } => {
                if status.job_id == Some(*job_id) {
                    status.job_id = None;
                }
            }
        });
    }

    /// Take in the driver's snapshot alone (after a command, or on the machine task's tick).
    pub(crate) fn refresh(&mut self, driver: DriverStatus, at_ms: i64) {
        self.update(driver, at_ms, |_| {});
    }

    fn update(
        &mut self,
        driver: DriverStatus,
        at_ms: i64,
        change: impl FnOnce(&mut MachineStatus),
    ) {
        let reported = self.reported_progress;
        self.sender.send_if_modified(|status| {
            let before = status.clone();
            change(status);
            status.progress = status.job_id.and(driver.progress.or(reported));
            status.link = driver.link;
            status.temperatures = driver.temperatures;
            let changed = MachineStatus {
                updated_ms: before.updated_ms,
                ..status.clone()
            } != before;
            if changed {
                status.updated_ms = at_ms;
            }
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microfab_drivers::traffic::LinkCounters;

    fn lines(done: u64, total: u64) -> Option<Progress> {
        Some(Progress {
            done,
            total,
            unit: ProgressUnit::Lines,
        })
    }

    #[test]
    fn events_and_snapshots_fold_into_the_status() {
        let (mut publisher, mut status) = StatusPublisher::new(0);
        let quiet = DriverStatus::default();
        let linked = DriverStatus {
            link: Some(LinkStatus {
                up: true,
                counters: LinkCounters {
                    resends: 2,
                    ..LinkCounters::default()
                },
            }),
            ..DriverStatus::default()
        };
        // (event or a refresh, snapshot, condition, job, progress, updated_ms)
        type Step = (
            Option<DriverEvent>,
            DriverStatus,
            Option<Condition>,
            Option<i64>,
            Option<Progress>,
            i64,
        );
        let steps: Vec<Step> = vec![
            (
                Some(DriverEvent::Condition(Condition::Idle)),
                quiet.clone(),
                Some(Condition::Idle),
                None,
                None,
                1,
            ),
            (None, quiet.clone(), Some(Condition::Idle), None, None, 1),
            (
                Some(DriverEvent::JobStarted { job_id: 7 }),
                quiet.clone(),
                Some(Condition::Idle),
                Some(7),
                None,
                3,
            ),
            (
                Some(DriverEvent::Condition(Condition::Busy)),
                quiet.clone(),
                Some(Condition::Busy),
                Some(7),
                None,
                4,
            ),
            (
                Some(DriverEvent::JobProgress {
                    job_id: 7,
                    done: 10,
                    total: 40,
                }),
                quiet.clone(),
                Some(Condition::Busy),
                Some(7),
                lines(10, 40),
                5,
            ),
            (
                None,
                linked.clone(),
                Some(Condition::Busy),
                Some(7),
                lines(10, 40),
                6,
            ),
            (
                Some(DriverEvent::JobFailed {
                    job_id: 6,
                    reason: "late".into(),
                }),
                linked.clone(),
                Some(Condition::Busy),
                Some(7),
                lines(10, 40),
                6,
            ),
            (
                Some(DriverEvent::JobFinished {
                    job_id: 7,
                    scrapped: 0,
                    scrap_reason: None,
                }),
                linked.clone(),
                Some(Condition::Busy),
                None,
                None,
                8,
            ),
            (
                Some(DriverEvent::Condition(Condition::Idle)),
                linked.clone(),
                Some(Condition::Idle),
                None,
                None,
                9,
            ),
        ];
        for (at, (event, driver, condition, job_id, progress, updated_ms)) in
            steps.into_iter().enumerate()
        {
            let at = at as i64 + 1;
            match &event {
                Some(event) => publisher.event(event, driver.clone(), at),
                None => publisher.refresh(driver.clone(), at),
            }
            let now = status.borrow_and_update().clone();
            assert_eq!(
                (
                    &now.condition,
                    now.job_id,
                    now.progress,
                    now.updated_ms,
                    &now.link
                ),
                (&condition, job_id, progress, updated_ms, &driver.link),
                "after {event:?} at {at}"
            );
        }
    }

    #[test]
    fn a_driver_that_measures_progress_itself_is_believed_while_a_run_is_on() {
        let (mut publisher, status) = StatusPublisher::new(0);
        let per_mille = |done| DriverStatus {
            progress: Some(Progress {
                done,
                total: 1000,
                unit: ProgressUnit::PerMille,
            }),
            ..DriverStatus::default()
        };
        publisher.event(&DriverEvent::JobStarted { job_id: 1 }, per_mille(0), 1);
        publisher.refresh(per_mille(250), 2);
        assert_eq!(status.borrow().progress.map(|p| p.done), Some(250));
        publisher.event(
            &DriverEvent::JobInterrupted {
                job_id: 1,
                reason: "aborted".into(),
                resume: None,
            },
            per_mille(250),
            3,
        );
        assert_eq!(status.borrow().progress, None, "no run, no progress");
    }
}
