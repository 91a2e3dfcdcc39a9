//! What an API key may do: its [`Role`]. Roles are ordered, each one allowing what the one
//! below it allows and more, so a route states the least role it needs and asks
//! [`Role::permits`]. (Keys themselves, their storage and checks, are in gitfleet-store.)

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an API key may do within its organization, from least to most. The order of the
/// variants is the order of the roles (`Viewer < Producer < Operator < Admin`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads only: its organization's jobs, queues, sandboxes and usage.
    Viewer,
    /// A viewer that also enqueues jobs.
    Producer,
    /// A producer that also retries dead jobs, cancels waiting ones and releases sandboxes.
    Operator,
    /// An operator that sees every organization and manages API keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Producer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Producer => "producer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether a key of this role may do what needs `needed`.
    pub fn permits(self, needed: Role) -> bool {
        self >= needed
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}: must be one of viewer, producer, operator, admin")
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_permits_what_the_roles_below_it_permit_and_no_more() {
        use Role::*;
        assert!(Viewer < Producer && Producer < Operator && Operator < Admin);
        for (i, role) in Role::ALL.into_iter().enumerate() {
            for (j, needed) in Role::ALL.into_iter().enumerate() {
                assert_eq!(role.permits(needed), i >= j, "{role} for {needed}");
            }
        }
    }

    #[test]
    fn roles_read_back_from_their_names_in_text_and_json() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
            let json = serde_json::to_value(role).unwrap();
            assert_eq!(json, role.as_str());
            assert_eq!(serde_json::from_value::<Role>(json).unwrap(), role);
        }
        let err = "Admin".parse::<Role>().unwrap_err();
        assert!(
            err.contains("\"Admin\"") && err.contains("viewer, producer, operator, admin"),
            "{err}"
        );
    }
}
