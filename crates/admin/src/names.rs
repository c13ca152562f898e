//! The rules for the names that end up in maintenance addresses and in
//! proxy credentials.
//!
//! A maintenance address is `<customer-id>[-<system-label>][-<ipv4>].maint.<domain>`:
//! the router splits it at the first hyphen, so a customer id must not contain
//! one, and a system label must be a valid DNS label. Addresses are
//! case-insensitive, so both are stored lowercase and looked up lowercase.
//! These are pure functions so that the CLI, the store and the router agree
//! and can be unit-tested without a database.

use crate::StoreError;

/// Longest customer id: it must fit one DNS label together with nothing else.
pub const MAX_CUSTOMER_ID_LEN: usize = 63;

/// Longest system label: a DNS label is at most 63 octets.
pub const MAX_LABEL_LEN: usize = 63;

/// Longest COM login name ("Login Name ... maximum length is 15 characters").
pub const MAX_LOGIN_NAME_LEN: usize = 15;

/// Checks a new customer id (ASCII letters and digits only) and returns its
/// stored, lowercase form.
pub fn normalize_customer_id(id: &str) -> Result<String, StoreError> {
    let invalid = |reason| StoreError::InvalidCustomerId {
        id: id.to_owned(),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if id.len() > MAX_CUSTOMER_ID_LEN {
        return Err(invalid("must be at most 63 characters"));
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid("only letters and digits are allowed"));
    }
    Ok(id.to_ascii_lowercase())
}

/// The form a customer id or label is looked up by. Anything that could not
/// have been stored simply finds nothing, which is what the router wants.
pub fn lookup_key(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Derives the DNS-label form of a system name: lowercase; every character
/// other than `[a-z0-9-]` becomes `-`; runs of `-` collapse to one; no `-` at
/// either end; at most 63 characters. "IPO Main" → "ipo-main".
///
/// `None` when nothing is left (the name has no ASCII letter or digit).
/// A valid label is its own label, so callers given "a name or a label"
/// (an agent's `system` setting) can pass either through this.
pub fn system_label(name: &str) -> Option<String> {
    let mut label = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (label.is_empty() || label.ends_with('-')) {
            // Leading hyphens are dropped and runs collapse.
            continue;
        }
        label.push(c);
    }
    // Only ASCII remains, so truncating by bytes cannot split a character.
    label.truncate(MAX_LABEL_LEN);
    while label.ends_with('-') {
        label.pop();
    }
    (!label.is_empty()).then_some(label)
}

/// A free-text field that must not be blank (names, reseller, provider).
/// Surrounding whitespace is dropped so that "Acme " and "Acme" are one owner.
/// NUL is refused: PostgreSQL text cannot hold it, and SQLite must store
/// what PostgreSQL would.
pub fn required(field: &'static str, value: &str) -> Result<String, StoreError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(StoreError::InvalidField {
            field,
            reason: "must not be empty",
        });
    }
    if value.contains('\0') {
        return Err(StoreError::InvalidField {
            field,
            reason: "must not contain NUL characters",
        });
    }
    Ok(value.to_owned())
}

/// A username sent in `Proxy-Authorization: Basic`: user and password are
/// split at the first colon there, so a colon could never match.
pub fn check_proxy_username(username: &str) -> Result<(), StoreError> {
    check_credential_name("username", username)?;
    if username.contains(':') {
        return Err(StoreError::InvalidField {
            field: "username",
            reason: "must not contain ':'",
        });
    }
    Ok(())
}

/// A COM login name: at most 15 characters, no spaces.
pub fn check_login_name(username: &str) -> Result<(), StoreError> {
    check_credential_name("username", username)?;
    if username.chars().count() > MAX_LOGIN_NAME_LEN {
        return Err(StoreError::InvalidField {
            field: "username",
            reason: "must be at most 15 characters",
        });
    }
    if username.contains(':') {
        return Err(StoreError::InvalidField {
            field: "username",
            reason: "must not contain ':'",
        });
    }
    Ok(())
}

fn check_credential_name(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::InvalidField {
            field,
            reason: "must not be empty",
        });
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(StoreError::InvalidField {
            field,
            reason: "must not contain spaces or control characters",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_of_a_name_with_a_space_is_hyphenated() {
        assert_eq!(system_label("IPO Main").unwrap(), "ipo-main");
    }

    #[test]
    fn label_replaces_underscore() {
        assert_eq!(system_label("sec_1").unwrap(), "sec-1");
    }

    #[test]
    fn label_collapses_and_trims_hyphens() {
        assert_eq!(system_label("  --Site  #2 (B)-- ").unwrap(), "site-2-b");
        assert_eq!(system_label("a---b").unwrap(), "a-b");
    }

    #[test]
    fn label_turns_dots_and_non_ascii_into_hyphens() {
        assert_eq!(system_label("10.0.0.5").unwrap(), "10-0-0-5");
        assert_eq!(system_label("Zürich Süd").unwrap(), "z-rich-s-d");
    }

    #[test]
    fn label_is_at_most_63_characters_without_trailing_hyphen() {
        let name = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let label = system_label(&name).unwrap();
        assert_eq!(label, "a".repeat(62));
        assert_eq!(system_label(&"x".repeat(100)).unwrap().len(), 63);
    }

    #[test]
    fn label_needs_a_letter_or_digit() {
        assert_eq!(system_label(" _-_ "), None);
        assert_eq!(system_label(""), None);
    }

    #[test]
    fn a_label_is_its_own_label() {
        for name in ["IPO Main", "sec_1", "a--b", "x.y.z", "Zürich"] {
            let label = system_label(name).unwrap();
            assert_eq!(system_label(&label).as_deref(), Some(label.as_str()));
        }
    }

    #[test]
    fn customer_id_is_lowercased() {
        assert_eq!(normalize_customer_id("AbC123").unwrap(), "abc123");
    }

    #[test]
    fn customer_id_with_hyphen_or_dot_is_refused_by_name() {
        for bad in ["12-34", "12.34", "12 34", "", "ü1", &"1".repeat(64)] {
            let err = normalize_customer_id(bad).unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidCustomerId { id, .. } if id == bad),
                "{bad}: {err}"
            );
        }
        let err = normalize_customer_id("12-34").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid customer id \"12-34\": only letters and digits are allowed"
        );
    }

    #[test]
    fn required_trims_and_refuses_blank() {
        assert_eq!(required("name", "  Acme ").unwrap(), "Acme");
        assert_eq!(
            required("reseller", "  ").unwrap_err().to_string(),
            "reseller: must not be empty"
        );
        assert_eq!(
            required("name", "Ac\0me").unwrap_err().to_string(),
            "name: must not contain NUL characters"
        );
    }

    #[test]
    fn proxy_username_cannot_hold_a_colon_or_space() {
        assert!(check_proxy_username("acc-user").is_ok());
        assert!(check_proxy_username("a:b").is_err());
        assert!(check_proxy_username("a b").is_err());
        assert!(check_proxy_username("").is_err());
    }

    #[test]
    fn login_name_is_at_most_15_characters() {
        assert!(check_login_name("admin").is_ok());
        assert!(check_login_name(&"a".repeat(15)).is_ok());
        let err = check_login_name(&"a".repeat(16)).unwrap_err();
        assert_eq!(err.to_string(), "username: must be at most 15 characters");
    }
}
