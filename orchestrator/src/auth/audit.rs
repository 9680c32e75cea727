//! The access rule `microfab verify` checks on the event log: every event a person causes was
//! caused by someone whose role allowed it *at that point of the log* (accounts and their
//! roles are replayed from the log itself). Operators' verbs by operators or admins (loads, and
//! unloads: a run's end not reported by its machine); account
//! changes by admins or `local` (whoever holds the database); a submission by its own maker
//! or staff; a cancellation by the order's maker or staff. The demo's own actors run the
//! plant; the plant's own (`system`, `dispatcher`, `machine`) cause no person's events.

use std::collections::HashMap;

use super::Role;
use crate::store::{Event, EventRecord};

/// Who an actor in the log is, at one point of it.
enum Who<'a> {
    Account(&'a str, Role),
    /// `demo`, `demo-operator`, `sim-operator`: the demo and its simulated people run the
    /// plant.
    Demo,
    /// `local`: `microfab user`, the bootstrap token.
    Local,
    /// `system`, `dispatcher`, `machine`, and any name that is not (or no longer) an account.
    Nobody,
}

/// What an event needs of whoever caused it; `None` for what the plant does itself.
enum Needs<'a> {
    Role(Role),
    /// An order's maker, or an operator.
    MakerOf(&'a str),
    Admin,
}

/// Every event in `records` caused by someone not allowed to, one line each.
pub fn unauthorised(records: &[EventRecord]) -> Vec<String> {
    let mut roles: HashMap<String, Role> = HashMap::new();
    let mut makers: HashMap<String, String> = HashMap::new();
    let mut found = Vec::new();
    for record in records {
        let who = match record.actor.as_str() {
            "demo" | "demo-operator" | "sim-operator" => Who::Demo,
            "local" => Who::Local,
            name => roles
                .get(name)
                .map_or(Who::Nobody, |role| Who::Account(name, *role)),
        };
        let allowed = match needs(record, &makers) {
            None => true,
            Some(needs) => match (&who, needs) {
                (Who::Local, Needs::Admin) => true,
                (Who::Local | Who::Nobody, _) => false,
                (Who::Demo, Needs::Admin) => false,
                (Who::Demo, _) => true,
                (Who::Account(_, role), Needs::Admin) => role.includes(Role::Admin),
                (Who::Account(_, role), Needs::Role(needed)) => role.includes(needed),
                (Who::Account(name, role), Needs::MakerOf(maker)) => {
                    role.includes(Role::Operator) || *name == maker
                }
            },
        };
        if !allowed {
            let role = match who {
                Who::Account(_, role) => format!("the {role} role"),
                Who::Demo => "the demo's role".into(),
                Who::Local => "no account (local)".into(),
                Who::Nobody => "no account".into(),
            };
            found.push(format!(
                "event {} ({}) was done by '{}', who had {role} then",
                record.seq,
                record.event.kind(),
                record.actor
            ));
        }
        remember(&record.event, &mut roles, &mut makers);
    }
    found
}

/// The plant's own writer for what a machine reports.
const MACHINE: &str = "machine";

fn needs<'a>(record: &'a EventRecord, makers: &'a HashMap<String, String>) -> Option<Needs<'a>> {
    Some(match &record.event {
        Event::AccountAdded { .. }
        | Event::AccountRoleChanged { .. }
        | Event::AccountPasswordSet { .. }
        | Event::AccountDisabled { .. }
        | Event::ApiTokenCreated { .. }
        | Event::ApiTokenRevoked { .. } => Needs::Admin,
        Event::OrderSubmitted { maker, .. } => Needs::MakerOf(maker),
        Event::OrderCancelled { order_id, .. } => match makers.get(order_id) {
            Some(maker) => Needs::MakerOf(maker),
            None => Needs::Role(Role::Operator),
        },
        Event::OrderApproved { .. }
        | Event::OrderRejected { .. }
        | Event::JobResolved { .. }
        | Event::JobResumed { .. }
        | Event::JobLoaded { .. }
        | Event::UnitScrapped { .. }
        | Event::MachineMaintenance { .. }
        | Event::MachineCommanded { .. }
        | Event::MaintenanceDone { .. }
        | Event::MaterialRestocked { .. }
        | Event::MaterialAdjusted { .. } => Needs::Role(Role::Operator),
        // A run's end is the machine's report, or an operator's unload with the inspection.
        Event::JobFinished { .. } if record.actor != MACHINE => Needs::Role(Role::Operator),
        _ => return None,
    })
}

/// What later events are judged by: accounts' roles, orders' makers.
fn remember(
    event: &Event,
    roles: &mut HashMap<String, Role>,
    makers: &mut HashMap<String, String>,
) {
    match event {
        Event::AccountAdded { account, role } | Event::AccountRoleChanged { account, role } => {
            match role.parse() {
                Ok(role) => {
                    roles.insert(account.clone(), role);
                }
                Err(_) => {
                    roles.remove(account);
                }
            }
        }
        Event::AccountDisabled { account } => {
            roles.remove(account);
        }
        Event::OrderSubmitted {
            order_id, maker, ..
        } => {
            makers.insert(order_id.clone(), maker.clone());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, actor: &str, event: Event) -> EventRecord {
        EventRecord {
            seq,
            at_ms: seq,
            actor: actor.into(),
            event,
        }
    }

    fn added(account: &str, role: &str) -> Event {
        Event::AccountAdded {
            account: account.into(),
            role: role.into(),
        }
    }

    fn submitted(order: &str, maker: &str) -> Event {
        Event::OrderSubmitted {
            order_id: order.into(),
            product: "p".into(),
            maker: maker.into(),
            quantity: 1,
            priority: "standard".into(),
            flags: vec![],
        }
    }

    fn approved(order: &str) -> Event {
        Event::OrderApproved {
            order_id: order.into(),
            reserved: vec![],
        }
    }

    fn cancelled(order: &str) -> Event {
        Event::OrderCancelled {
            order_id: order.into(),
            reason: "r".into(),
            released: vec![],
            cancelled_jobs: vec![],
        }
    }

    #[test]
    fn each_event_was_done_by_someone_whose_role_allowed_it_then() {
        let log = vec![
            record(1, "local", added("ada", "admin")),
            record(2, "ada", added("olga", "operator")),
            record(3, "ada", added("mia", "maker")),
            record(4, "ada", added("max", "maker")),
            record(5, "mia", submitted("o1", "mia")),
            record(6, "olga", submitted("o2", "max")),
            record(7, "demo", submitted("o3", "anyone")),
            record(8, "olga", approved("o1")),
            record(9, "demo", approved("o3")),
            record(10, "max", cancelled("o2")),
            record(
                11,
                "machine",
                Event::JobStarted {
                    order_id: "o1".into(),
                    job_id: 1,
                    machine_id: "m".into(),
                },
            ),
        ];
        assert_eq!(unauthorised(&log), Vec::<String>::new());

        // The same log, tampered with: a maker approves, another maker's submission and
        // cancellation, an operator adds an account, a name without an account, and an
        // account that was disabled.
        let mut tampered = log.clone();
        tampered.extend([
            record(12, "mia", approved("o2")),
            record(13, "mia", submitted("o4", "max")),
            record(14, "mia", cancelled("o2")),
            record(15, "olga", added("eve", "admin")),
            record(16, "intruder", approved("o1")),
            record(
                17,
                "ada",
                Event::AccountDisabled {
                    account: "olga".into(),
                },
            ),
            record(18, "olga", approved("o1")),
            record(19, "system", approved("o1")),
        ]);
        let found = unauthorised(&tampered);
        let seqs: Vec<&str> = found
            .iter()
            .map(|line| line.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(
            seqs,
            ["12", "13", "14", "15", "16", "18", "19"],
            "{found:#?}"
        );
        assert!(
            found[0].contains("'mia', who had the maker role then"),
            "{}",
            found[0]
        );
    }
}
