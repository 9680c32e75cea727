//! The states an order, a job and a machine can be in: closed sets with one spelling, the
//! same on the wire (serde, snake_case), in the database (the `state` columns) and in the
//! event log. The one mapping to and from the database is [`sqlx::Type`], `Encode` and
//! `Decode` for `Any` here: rows decode into these enums, and queries bind them, so no state
//! is written twice.

use std::fmt;
use std::str::FromStr;

use sqlx::any::AnyValueRef;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Any, Database, Decode, Encode, Type};

/// A string that names no state of its kind (a corrupt row, a filter nobody defined).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not {kind} state")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

/// Declares a state enum with its names, `as_str`, `FromStr`, `Display` and the database
/// mapping, so that the three enums cannot drift apart in how they are spelled or stored.
macro_rules! states {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(value: &str) -> Result<Self, UnknownState> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState { kind: $kind, value: value.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Type<Any> for $name {
            fn type_info() -> <Any as Database>::TypeInfo {
                <str as Type<Any>>::type_info()
            }
        }

        impl<'q> Encode<'q, Any> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <Any as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'q, Any>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Any> for $name {
            fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<String as Decode<'r, Any>>::decode(value)?.parse()?)
            }
        }
    };
}

states! {
    /// Where an order is in its lifecycle: submitted → approved | rejected → in progress →
    /// completed; cancelled from any open state.
    OrderState, "an order" {
        Submitted => "submitted",
        Approved => "approved",
        Rejected => "rejected",
        InProgress => "in_progress",
        Completed => "completed",
        Cancelled => "cancelled",
    }
}

impl OrderState {
    /// The states in which an order may get work and material; every other state is closed
    /// (not yet approved, or ended).
    pub const ACTIVE: [OrderState; 2] = [OrderState::Approved, OrderState::InProgress];

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

states! {
    /// Where one run is: planned → [awaiting_load until an operator has loaded the machine] →
    /// dispatched (sent) → running → [awaiting_unload until an operator has unloaded and
    /// inspected it] → done | failed; interrupted until an operator resolves or resumes it;
    /// cancelled with its order. Material is taken when the run is given to its machine
    /// (`awaiting_load`, or `dispatched` on a machine that needs no load).
    JobState, "a job" {
        Planned => "planned",
        AwaitingLoad => "awaiting_load",
        Dispatched => "dispatched",
        Running => "running",
        Done => "done",
        Failed => "failed",
        AwaitingUnload => "awaiting_unload",
        Interrupted => "interrupted",
        Cancelled => "cancelled",
    }
}

impl JobState {
    /// Runs not finished: their units are still coming.
    pub const OPEN: [JobState; 6] = [
        JobState::Planned,
        JobState::AwaitingLoad,
        JobState::Dispatched,
        JobState::Running,
        JobState::AwaitingUnload,
        JobState::Interrupted,
    ];
    /// Runs that took their inputs and material from the shelf.
    pub const STARTED: [JobState; 7] = [
        JobState::AwaitingLoad,
        JobState::Dispatched,
        JobState::Running,
        JobState::AwaitingUnload,
        JobState::Done,
        JobState::Failed,
        JobState::Interrupted,
    ];
    /// Runs the machine itself has now (sent to it): what a restart must not guess about.
    pub const ON_MACHINE: [JobState; 2] = [JobState::Dispatched, JobState::Running];
    /// Runs waiting on an operator at their machine: the machine takes no other run, and a
    /// restart changes nothing about them (nothing was sent, or the machine has finished).
    pub const AWAITING_OPERATOR: [JobState; 2] = [JobState::AwaitingLoad, JobState::AwaitingUnload];
}

states! {
    /// What a machine's driver last said about it, as stored. `Unavailable` means "we do not
    /// know" and is never shown as idle. The machine view adds what the store derives
    /// (maintenance, a held run).
    MachineState, "a machine" {
        Offline => "offline",
        Idle => "idle",
        Busy => "busy",
        Paused => "paused",
        Alarm => "alarm",
        Unavailable => "unavailable",
    }
}

/// The `IN (...)` list of a set of states, for SQL that filters on several at once. The
/// strings come from the enums, never from a caller.
pub fn sql_list<S: Copy + fmt::Display>(states: &[S]) -> String {
    states
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<S>(all: &[S])
    where
        S: Copy + fmt::Debug + PartialEq + FromStr<Err = UnknownState> + fmt::Display,
        S: serde::Serialize + serde::de::DeserializeOwned,
    {
        for state in all {
            let text = state.to_string();
            assert_eq!(text.parse::<S>(), Ok(*state));
            assert_eq!(serde_json::to_string(state).unwrap(), format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<S>(&format!("\"{text}\"")).unwrap(),
                *state
            );
        }
    }

    #[test]
    fn each_state_has_one_spelling_on_the_wire_and_in_the_database() {
        round_trips(OrderState::ALL);
        round_trips(JobState::ALL);
        round_trips(MachineState::ALL);
    }

    #[test]
    fn an_unknown_state_names_its_kind() {
        assert_eq!(
            "running".parse::<OrderState>().unwrap_err().to_string(),
            "'running' is not an order state"
        );
    }
}
