//! Operator actions (`$H`, `$X`, reset): sent on request only, done when the machine did them.

use std::time::{Duration, Instant};

use super::GrblProtocol;
use crate::DriverError;

/// Commands only an operator gives: never part of a job, never sent on the driver's own
/// initiative (homing moves the machine; unlocking skips the safety the alarm stands for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrblOperatorAction {
    /// `$X`: clear the alarm lock without homing.
    Unlock,
    /// `$H`: run the homing cycle.
    Home,
    /// Ctrl-X: soft reset (stops everything; position is lost if the machine was moving).
    SoftReset,
}

impl GrblOperatorAction {
    pub fn name(self) -> &'static str {
        match self {
            GrblOperatorAction::Unlock => "unlock",
            GrblOperatorAction::Home => "home",
            GrblOperatorAction::SoftReset => "soft_reset",
        }
    }

    /// How long the machine may take to show it did it. Homing moves every axis to its switch.
    pub fn timeout(self) -> Duration {
        match self {
            GrblOperatorAction::Home => Duration::from_secs(120),
            GrblOperatorAction::Unlock | GrblOperatorAction::SoftReset => Duration::from_secs(5),
        }
    }
}

/// An operator action sent, and what must come back before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OperatorWait {
    /// `$X` or `$H` sent: waiting for its `ok` or `error:N`.
    Answer(GrblOperatorAction),
    /// Answered `ok`: a status report requested after it must no longer say `Alarm`.
    LeftAlarm {
        action: GrblOperatorAction,
        after_poll: u64,
    },
    /// Ctrl-X sent: done when the controller is back (banner, or a report after it).
    Reset,
}

impl GrblProtocol {
    /// An operator's explicit command (`$X`, `$H`, soft reset). Refused while a job streams.
    pub fn operator(
        &mut self,
        now: Instant,
        action: GrblOperatorAction,
    ) -> Result<(), DriverError> {
        if let Some(reason) = &self.link_down {
            return Err(DriverError::LinkDown(reason.clone()));
        }
        if let Some(job) = &self.job {
            return Err(DriverError::Refused(format!(
                "job {} is running; abort it first",
                job.job_id
            )));
        }
        if self.operator_wait.is_some() {
            return Err(DriverError::Refused(
                "another operator action is under way".into(),
            ));
        }
        self.operator_outcome = None;
        match action {
            GrblOperatorAction::SoftReset => {
                self.send_reset(now);
                self.operator_wait = Some(OperatorWait::Reset);
            }
            GrblOperatorAction::Unlock | GrblOperatorAction::Home if self.reset_required => {
                return Err(DriverError::Refused(self.alarm_reason()));
            }
            GrblOperatorAction::Unlock | GrblOperatorAction::Home => {
                let text = if action == GrblOperatorAction::Unlock {
                    "$X"
                } else {
                    "$H"
                };
                self.operator_queue.push_back((action, text));
                self.operator_wait = Some(OperatorWait::Answer(action));
                self.stream(now);
            }
        }
        self.update_condition();
        Ok(())
    }

    /// What became of the last operator action, once the machine showed it (taken once).
    pub fn take_operator_outcome(&mut self) -> Option<Result<(), DriverError>> {
        self.operator_outcome.take()
    }

    /// The machine did not show the action's result in time: give up waiting for it.
    pub fn operator_timed_out(&mut self, action: GrblOperatorAction) -> DriverError {
        self.operator_wait = None;
        self.operator_outcome = None;
        DriverError::LinkDown(format!(
            "the controller did not confirm {} within {:?}",
            action.name(),
            action.timeout()
        ))
    }

    // ----- outputs -----

    pub(super) fn finish_operator(&mut self, outcome: Result<(), DriverError>) {
        if self.operator_wait.take().is_some() {
            self.operator_outcome = Some(outcome);
        }
    }
}
