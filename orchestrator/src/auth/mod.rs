//! Accounts: who may use the plant and what each role may do.
//!
//! Three roles, each a superset of the one before it for what it may see of the plant:
//! a `maker` sees and acts on their own orders and their own material accounts only; an
//! `operator` runs the plant; an `admin` also manages accounts and the plant config.
//!
//! Two floors. Beside the plant, on the store: `accounts` (accounts and API tokens),
//! `sessions` (browser sessions), `secrets` (hashes, random tokens). Beside the API, over
//! HTTP: `http` (the one middleware every request passes: who is asking, CSRF, Origin, and
//! [`Caller`] for handlers), `login` (`POST /login`, `POST /logout`, the rate limit).
//! What each role may do is checked in `ops`, one place for the API and the panel.

pub mod accounts;
pub mod audit;
mod http;
mod login;
mod rate_limit;
pub mod secrets;
pub mod sessions;

pub use http::{CSRF_HEADER, Caller, SESSION_COOKIE, guard, peer_is_loopback, unauthorized};
pub use login::{MAX_FAILURES as MAX_FAILED_SIGN_INS, local_target, routes};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Maker,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Maker, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Maker => "maker",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may (admin ⊇ operator ⊇ maker).
    pub fn includes(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that a width (`{role:<8}`) lines up a table.
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("unknown role '{s}'; the roles are maker, operator and admin"))
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn roles_include_the_ones_below_them() {
        assert!(Role::Admin.includes(Role::Operator));
        assert!(Role::Operator.includes(Role::Maker));
        assert!(!Role::Maker.includes(Role::Operator));
        assert!(!Role::Operator.includes(Role::Admin));
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .contains("maker, operator and admin")
        );
    }
}
