//! Each committed event as one log line: the facts an operator greps for (runs dispatched and
//! finished with their counts, interrupted runs, machine conditions, orders completed) at
//! info, the chatty ones (runs started, runs created, reservations) at debug. Logged after the
//! commit, so the logs never tell of a change the database does not have; inside the
//! transaction's span (the plant's, the operation's), which names who and what it was about.
//!
//! Every line has the event's `seq` (its place in the event log), `event` (its kind), `actor`
//! and the `order`, `job` and `machine` it names.

use super::{Event, EventRecord};

/// The log target of these lines: `RUST_LOG=warn,microfab::events=info` gives the plant's
/// facts without the rest.
pub const TARGET: &str = "microfab::events";

macro_rules! fact {
    ($level:ident, $record:expr, $message:literal $(, $($field:tt)+)?) => {
        tracing::$level!(
            target: TARGET,
            seq = $record.seq,
            event = %$record.event.kind(),
            actor = %$record.actor,
            order = $record.event.order_id().map(tracing::field::display),
            job = $record.event.job_id(),
            machine = $record.event.machine_id().map(tracing::field::display),
            $($($field)+,)?
            $message
        )
    };
}

pub fn log(record: &EventRecord) {
    match &record.event {
        Event::MaterialAccountOpened {
            account, on_hand, ..
        } => fact!(debug, record, "stock account opened", account = %account, on_hand = %on_hand),
        Event::MaterialRestocked {
            account,
            amount,
            lot,
            ..
        } => fact!(info, record, "material restocked", account = %account, amount = %amount, lot),
        Event::MaterialAdjusted {
            account,
            delta,
            reason,
        } => fact!(info, record, "stock adjusted", account = %account, delta, reason),
        Event::OrderSubmitted {
            product,
            maker,
            quantity,
            flags,
            ..
        } => {
            fact!(info, record, "order submitted", product, maker = %maker, quantity, flags = ?flags)
        }
        Event::OrderApproved { .. } => fact!(info, record, "order approved"),
        Event::OrderRejected { reason, .. } => fact!(info, record, "order rejected", reason),
        Event::OrderCancelled {
            reason,
            cancelled_jobs,
            ..
        } => fact!(
            info,
            record,
            "order cancelled",
            reason,
            runs_cancelled = cancelled_jobs.len()
        ),
        Event::OrderCompleted { .. } => fact!(info, record, "order completed"),
        Event::OrderReopened { reason, .. } => fact!(info, record, "order reopened", reason),
        Event::JobsCreated { jobs, .. } => fact!(debug, record, "runs created", runs = jobs.len()),
        Event::JobToppedUp { units_added, .. } => {
            fact!(debug, record, "run topped up", units_added)
        }
        Event::MaterialReservedForJobs { job_ids, .. } => fact!(
            debug,
            record,
            "material reserved for waiting runs",
            runs = job_ids.len()
        ),
        Event::MaterialShort {
            material, needed, ..
        } => fact!(info, record, "material short", material = %material, needed = %needed),
        Event::JobDispatched { awaiting_load, .. } => {
            fact!(info, record, "run dispatched", awaiting_load)
        }
        Event::JobLoaded { held_ms, .. } => fact!(info, record, "run loaded", held_ms),
        Event::JobAwaitingUnload {
            scrapped, failed, ..
        } => fact!(info, record, "run awaits its unload", scrapped, failed),
        Event::JobRequeued {
            reason, cancelled, ..
        } => fact!(info, record, "run re-queued", reason, cancelled),
        Event::JobStarted { .. } => fact!(debug, record, "run started"),
        Event::JobFinished {
            state,
            good,
            scrapped,
            reason,
            final_step,
            held_ms,
            ..
        } => fact!(
            info,
            record,
            "run finished",
            state = %state,
            good,
            scrapped,
            reason,
            final_step,
            held_ms
        ),
        Event::JobInterrupted { reason, resume, .. } => fact!(
            info,
            record,
            "run interrupted",
            reason,
            resumable = resume.is_some()
        ),
        Event::JobResumed {
            from_line, reason, ..
        } => fact!(info, record, "run resumed", from_line, reason),
        Event::JobResolved {
            outcome,
            good,
            scrapped,
            reason,
            ..
        } => fact!(
            info,
            record,
            "run resolved",
            outcome,
            good,
            scrapped,
            reason
        ),
        Event::UnitScrapped {
            unit_id, reason, ..
        } => fact!(info, record, "unit scrapped", unit = unit_id, reason),
        // A machine going busy and idle again is every run's rhythm: at info it was nearly half
        // the log. What an operator must see (alarm, unavailable, offline, paused) stays at info.
        Event::MachineState { state, reason, .. } if state == "idle" || state == "busy" => {
            fact!(debug, record, "machine condition changed", state = %state, reason)
        }
        Event::MachineState { state, reason, .. } => {
            fact!(info, record, "machine condition changed", state = %state, reason)
        }
        Event::MachineMaintenance { on, reason, .. } => {
            fact!(info, record, "machine maintenance", on, reason)
        }
        Event::MachineCommanded { command, .. } => {
            fact!(info, record, "machine commanded", command = ?command)
        }
        Event::MaintenanceDue { task, .. } => fact!(info, record, "maintenance due", task = %task),
        Event::MaintenanceDone { task, held_ms, .. } => {
            fact!(info, record, "maintenance done", task = %task, held_ms)
        }
        Event::AccountAdded { account, role } => {
            fact!(info, record, "account added", account = %account, role = %role)
        }
        Event::AccountRoleChanged { account, role } => {
            fact!(info, record, "account role changed", account = %account, role = %role)
        }
        Event::AccountPasswordSet { account } => {
            fact!(info, record, "account password set", account = %account)
        }
        Event::AccountDisabled { account } => {
            fact!(info, record, "account disabled", account = %account)
        }
        Event::ApiTokenCreated {
            account,
            token_id,
            label,
        } => fact!(info, record, "API token created", account = %account, token_id, label),
        Event::ApiTokenRevoked { account, token_id } => {
            fact!(info, record, "API token revoked", account = %account, token_id)
        }
    }
}
