//! Injected faults as they strike the firmware: those due at a time, and those bound to a line
//! number, taken when that line arrives or runs.

// The rest of the firmware's state machine, which a fault changes.
use super::*;

impl Firmware {
    pub(super) fn fire_time_faults(&mut self) {
        let elapsed = self.now.duration_since(self.started).as_secs_f64();
        let due: Vec<FaultKind> = self
            .faults
            .iter_mut()
            .filter(|(fault, fired)| {
                !fired
                    && is_immediate(&fault.kind)
                    && matches!(fault.trigger, Trigger::Time(secs) if elapsed >= secs)
            })
            .map(|(fault, fired)| {
                *fired = true;
                fault.kind.clone()
            })
            .collect();
        for kind in due {
            match kind {
                FaultKind::Reset => self.reset(),
                FaultKind::Kill => self.kill("Printer halted. kill() called!"),
                FaultKind::Hang { seconds } => self.hang(seconds),
                _ => {}
            }
        }
    }

    /// A firmware fault due at this accepted line, or (for `swallow-ok`, `busy`, `error`) at the
    /// next command when triggered by time.
    pub(super) fn take_line_fault(
        &mut self,
        line: Option<i64>,
        wanted: fn(&FaultKind) -> bool,
    ) -> Option<FaultKind> {
        let elapsed = self.now.duration_since(self.started).as_secs_f64();
        let (fault, fired) = self.faults.iter_mut().find(|(fault, fired)| {
            !fired
                && wanted(&fault.kind)
                && match fault.trigger {
                    Trigger::Line(n) => line == Some(n as i64),
                    Trigger::Time(secs) => elapsed >= secs,
                }
        })?;
        *fired = true;
        Some(fault.kind.clone())
    }

    pub(super) fn apply_line_faults(&mut self, number: Option<i64>, running: &mut Running) {
        if self
            .take_line_fault(number, |k| *k == FaultKind::SwallowOk)
            .is_some()
        {
            running.swallow_ok = true;
        }
        if let Some(FaultKind::Busy { seconds }) =
            self.take_line_fault(number, |k| matches!(k, FaultKind::Busy { .. }))
        {
            running.wait = Wait::Until(self.now + Duration::from_secs_f64(seconds));
        }
        if self
            .take_line_fault(number, |k| *k == FaultKind::Error)
            .is_some()
        {
            running.reply = Reply::ErrorThenOk("Probing Failed".into());
        }
        if self
            .take_line_fault(number, |k| *k == FaultKind::CancelOnPrinter)
            .is_some()
        {
            self.say("//action:cancel");
        }
        if self
            .take_line_fault(number, |k| *k == FaultKind::Kill)
            .is_some()
        {
            self.kill("Printer halted. kill() called!");
        }
    }
}
