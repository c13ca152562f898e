//! The five COM user roles of the manual ("COM User Roles").
//!
//! Only the names live here for now; what each role may do is the admin
//! plane's permission matrix. The stored and displayed spelling is the
//! kebab-case one the CLI accepts (`read-only`), so the database, the JSON
//! and the command line agree.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A COM user's role.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// All menus and functions.
    Administrator,
    /// Like Operator, and may manage Operator users.
    Supervisor,
    /// Sees and manages only customers assigned to them.
    Operator,
    /// Like Administrator, read-only.
    Support,
    /// Like Operator, read-only.
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Administrator,
        Role::Supervisor,
        Role::Operator,
        Role::Support,
        Role::ReadOnly,
    ];

    /// The canonical spelling, as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
            Role::Support => "support",
            Role::ReadOnly => "read-only",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected administrator, supervisor, operator, support or read-only")]
pub struct ParseRoleError(pub String);

impl FromStr for Role {
    type Err = ParseRoleError;

    /// Case-insensitive; `read-only`, `readonly` and `read_only` all mean
    /// [`Role::ReadOnly`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "administrator" => Ok(Role::Administrator),
            "supervisor" => Ok(Role::Supervisor),
            "operator" => Ok(Role::Operator),
            "support" => Ok(Role::Support),
            "read-only" | "readonly" | "read_only" => Ok(Role::ReadOnly),
            _ => Err(ParseRoleError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_parses_from_its_own_spelling() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
    }

    #[test]
    fn read_only_has_spelling_variants() {
        for s in ["read-only", "readonly", "Read-Only", "READ_ONLY"] {
            assert_eq!(s.parse::<Role>(), Ok(Role::ReadOnly), "{s}");
        }
        assert_eq!("Administrator".parse::<Role>(), Ok(Role::Administrator));
    }

    #[test]
    fn unknown_role_is_named() {
        let err = "admin".parse::<Role>().unwrap_err();
        assert!(
            err.to_string().starts_with("unknown role \"admin\""),
            "{err}"
        );
    }

    #[test]
    fn role_serializes_as_it_is_stored() {
        for role in Role::ALL {
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::Value::String(role.as_str().to_owned())
            );
        }
    }
}
