//! What each role may do: the manual's "COM User Roles" table, plus the
//! actions this product adds (alarm clearing, proxy accounts, the audit log).
//! Every API endpoint asks [`allowed`] before it acts; which customers a
//! role sees is the separate visibility rule (Administrator and Support see
//! all, the others what is assigned to them, manually or by label).
//!
//! The manual's table reaches us OCR-damaged (ticks read as `1`, `П`, `_`
//! and cells shifted between columns), so each row below is the legible
//! cells reconciled with the role definitions the manual states in words
//! (chapter 1 and "COM User Settings"), and where the two disagree the words
//! win:
//!
//! - Support is "similar to Administrator, read-only" and Read-Only "similar
//!   to Operator, read-only": read-only mode allows no action except editing
//!   one's own profile, so neither has any write action.
//! - Supervisor is "similar to Operator" and also creates and manages
//!   Operator users and assigns them to its own customers.
//! - Remote-support addresses: "only supported for Supervisor, Operator and
//!   Read-Only users" (chapters 23-25), as the table says.
//! - Adding, deleting and editing customers, customization files and COM
//!   preferences: Administrator only (the legible ticks).
//! - Maintenance proxy accounts: "login to COM using a user other than an
//!   Administrator" (chapter 23): the roles that work for resellers see them,
//!   Supervisor and Operator set them (for the owners they are assigned).

use serde::Serialize;

use crate::role::Role;

/// Something a user asks the admin plane to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    ViewDashboard,
    ViewAlarms,
    ViewCustomerList,
    ViewCustomerDetails,
    ViewRemoteSupportAddresses,
    LaunchApplication,
    BackupRestore,
    UpgradeCustomers,
    AddDeleteCustomers,
    EditCustomers,
    LogFileManagement,
    RefreshCustomizationFiles,
    CustomizationFileManagement,
    ResendSystemEmail,
    ComPreferences,
    CreateComUsers,
    AssignComUsers,
    /// Clear alarms that are no longer active.
    ClearAlarms,
    ViewProxyAccounts,
    SetProxyAccounts,
    ViewAuditLog,
}

/// Columns in the manual's order.
const COLUMNS: [Role; 5] = [
    Role::Administrator,
    Role::Support,
    Role::Supervisor,
    Role::Operator,
    Role::ReadOnly,
];

const Y: bool = true;
const N: bool = false;

/// The matrix, one row per action, columns as [`COLUMNS`]:
/// Administrator, Support, Supervisor, Operator, Read-Only.
pub const MATRIX: &[(Action, [bool; 5])] = &[
    (Action::ViewDashboard, [Y, Y, Y, Y, Y]),
    (Action::ViewAlarms, [Y, Y, Y, Y, Y]),
    (Action::ViewCustomerList, [Y, Y, Y, Y, Y]),
    (Action::ViewCustomerDetails, [Y, Y, Y, Y, Y]),
    (Action::ViewRemoteSupportAddresses, [N, N, Y, Y, Y]),
    (Action::LaunchApplication, [Y, N, Y, Y, N]),
    (Action::BackupRestore, [Y, N, Y, Y, N]),
    (Action::UpgradeCustomers, [Y, N, Y, Y, N]),
    (Action::AddDeleteCustomers, [Y, N, N, N, N]),
    (Action::EditCustomers, [Y, N, N, N, N]),
    (Action::LogFileManagement, [Y, N, Y, Y, N]),
    (Action::RefreshCustomizationFiles, [Y, N, Y, Y, N]),
    (Action::CustomizationFileManagement, [Y, N, N, N, N]),
    (Action::ResendSystemEmail, [Y, N, Y, Y, N]),
    (Action::ComPreferences, [Y, N, N, N, N]),
    (Action::CreateComUsers, [Y, N, Y, N, N]),
    (Action::AssignComUsers, [Y, N, Y, N, N]),
    (Action::ClearAlarms, [Y, N, Y, Y, N]),
    (Action::ViewProxyAccounts, [N, N, Y, Y, Y]),
    (Action::SetProxyAccounts, [N, N, Y, Y, N]),
    (Action::ViewAuditLog, [Y, N, N, N, N]),
];

/// Whether `role` may perform `action` at all (on which customers is the
/// visibility rule's question).
pub fn allowed(role: Role, action: Action) -> bool {
    let column = COLUMNS
        .iter()
        .position(|r| *r == role)
        .expect("every role has a column");
    MATRIX
        .iter()
        .find(|(a, _)| *a == action)
        .is_some_and(|(_, cells)| cells[column])
}

/// Whether the role works in read-only mode (manual: "Read-Only and
/// Wallboard Display Modes"): it may change nothing but its own profile.
pub fn is_read_only(role: Role) -> bool {
    matches!(role, Role::Support | Role::ReadOnly)
}

/// Whether the role sees every customer rather than its assigned ones.
pub fn sees_all_customers(role: Role) -> bool {
    matches!(role, Role::Administrator | Role::Support)
}

/// Whether wallboard mode may be set for the role (Support and Read-Only).
pub fn may_use_wallboard(role: Role) -> bool {
    is_read_only(role)
}

/// Whether a user of `manager`'s role may create or manage a user of
/// `managed`'s role: Administrators any user, Supervisors Operators only.
pub fn may_manage_user(manager: Role, managed: Role) -> bool {
    match manager {
        Role::Administrator => true,
        Role::Supervisor => managed == Role::Operator,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Actions that change something.
    fn writes(action: Action) -> bool {
        !matches!(
            action,
            Action::ViewDashboard
                | Action::ViewAlarms
                | Action::ViewCustomerList
                | Action::ViewCustomerDetails
                | Action::ViewRemoteSupportAddresses
                | Action::ViewProxyAccounts
                | Action::ViewAuditLog
        )
    }

    #[test]
    fn every_action_has_exactly_one_row() {
        for (i, (action, _)) in MATRIX.iter().enumerate() {
            assert!(
                MATRIX[i + 1..].iter().all(|(a, _)| a != action),
                "{action:?} twice"
            );
        }
        assert_eq!(MATRIX.len(), 21);
    }

    #[test]
    fn read_only_roles_have_no_write_action() {
        for (action, _) in MATRIX {
            for role in [Role::Support, Role::ReadOnly] {
                assert!(
                    !(writes(*action) && allowed(role, *action)),
                    "{role} may {action:?}"
                );
            }
        }
    }

    #[test]
    fn roles_relate_as_the_manual_describes_them() {
        for (action, _) in MATRIX {
            let a = *action;
            // Supervisor: an Operator who also manages Operator users.
            if allowed(Role::Operator, a) {
                assert!(allowed(Role::Supervisor, a), "{a:?}");
            }
            // Read-Only: an Operator without writes.
            assert_eq!(
                allowed(Role::ReadOnly, a),
                allowed(Role::Operator, a) && !writes(a),
                "{a:?}"
            );
            // Support: an Administrator without writes, except what the
            // manual keeps from Administrators (remote-support addresses
            // and proxy accounts are for those who work for resellers).
            if !matches!(
                a,
                Action::ViewRemoteSupportAddresses | Action::ViewProxyAccounts
            ) {
                assert_eq!(
                    allowed(Role::Support, a),
                    allowed(Role::Administrator, a) && !writes(a) && a != Action::ViewAuditLog,
                    "{a:?}"
                );
            }
        }
    }

    #[test]
    fn user_management_follows_chapter_13() {
        for managed in Role::ALL {
            assert!(may_manage_user(Role::Administrator, managed));
            assert_eq!(
                may_manage_user(Role::Supervisor, managed),
                managed == Role::Operator
            );
            for manager in [Role::Operator, Role::Support, Role::ReadOnly] {
                assert!(!may_manage_user(manager, managed));
            }
        }
        assert!(sees_all_customers(Role::Support));
        assert!(!sees_all_customers(Role::Supervisor));
        assert!(may_use_wallboard(Role::ReadOnly) && !may_use_wallboard(Role::Operator));
    }
}
