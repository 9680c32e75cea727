//! A manual station (assembly, inspection, welding): a run completes when an operator confirms it.

use std::collections::VecDeque;

use crate::registry::{BuildContext, DriverKind, Supports};
use crate::{Condition, Driver, DriverCommand, DriverError, DriverEvent};

/// A manual station's `driver` table (`kind = "manual"`): nothing to set.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualConfig {}

impl DriverKind for ManualConfig {
    fn supports() -> Supports {
        Supports {
            resume_from_line: false,
            resume_by_default: false,
            state_survives_restart: false,
            operator_actions: false,
        }
    }

    fn build(&self, _: &BuildContext) -> Box<dyn Driver> {
        Box::new(ManualStation::default())
    }
}

#[derive(Debug)]
pub struct ManualStation {
    active_job: Option<i64>,
    paused: bool,
    pending: VecDeque<DriverEvent>,
}

impl Default for ManualStation {
    fn default() -> Self {
        ManualStation {
            active_job: None,
            paused: false,
            pending: VecDeque::from([DriverEvent::Condition(Condition::Idle)]),
        }
    }
}

#[async_trait::async_trait]
impl Driver for ManualStation {
    fn kind(&self) -> &'static str {
        "manual"
    }

    async fn command(&mut self, command: DriverCommand) -> Result<(), DriverError> {
        match command {
            DriverCommand::Run(job) => {
                if self.active_job.is_some() {
                    return Err(DriverError::Refused("the station is busy".into()));
                }
                self.active_job = Some(job.job_id);
                self.pending
                    .push_back(DriverEvent::Condition(Condition::Busy));
                self.pending
                    .push_back(DriverEvent::JobStarted { job_id: job.job_id });
            }
            DriverCommand::ResumeRun { .. } => {
                return Err(DriverError::Unsupported("resume from a line"));
            }
            DriverCommand::ConfirmManual { job_id } => {
                if self.active_job != Some(job_id) {
                    return Err(DriverError::Refused(format!(
                        "job {job_id} is not the one at this station"
                    )));
                }
                self.active_job = None;
                self.paused = false;
                self.pending.push_back(DriverEvent::JobFinished {
                    job_id,
                    scrapped: 0,
                    scrap_reason: None,
                });
                self.pending
                    .push_back(DriverEvent::Condition(Condition::Idle));
            }
            DriverCommand::Pause | DriverCommand::Resume => {
                if self.active_job.is_none() {
                    return Err(DriverError::Refused("no job at this station".into()));
                }
                self.paused = matches!(command, DriverCommand::Pause);
                let condition = if self.paused {
                    Condition::Paused
                } else {
                    Condition::Busy
                };
                self.pending.push_back(DriverEvent::Condition(condition));
            }
            DriverCommand::Abort => {
                let job_id = self
                    .active_job
                    .take()
                    .ok_or_else(|| DriverError::Refused("no job to abort".into()))?;
                self.pending.push_back(DriverEvent::JobInterrupted {
                    job_id,
                    reason: "aborted by operator".into(),
                    resume: None,
                });
                self.pending
                    .push_back(DriverEvent::Condition(Condition::Idle));
            }
        }
        Ok(())
    }

    async fn next_event(&mut self) -> DriverEvent {
        match self.pending.pop_front() {
            Some(event) => event,
            None => std::future::pending().await,
        }
    }
}
