//! Customers: one per customer site (solution), named by the id that starts
//! its maintenance addresses, and owned by a reseller and optionally a
//! distributor (provider) whose proxy accounts may reach it.
//!
//! [`Customer`] is what the router needs on every CONNECT (one indexed row);
//! [`CustomerDetails`] adds the manual's "Customer Account Settings"
//! (service user, tags, contact fields, notes), read by the admin plane.
//!
//! The service user's password is kept SEALED (AES-256-GCM, [`crate::seal`])
//! because comgate must present it to the system later; it is never part of
//! a `Customer`, a `CustomerDetails` or a list, never printed by `Debug`, and
//! only [`Store::reveal_service_password`] opens it.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use super::{is_unique_violation, now, unstorable, Store, StoreRow};
use crate::error::CustomerField;
use crate::names::{lookup_key, normalize_customer_id, required};
use crate::StoreError;

/// At most this many tags per customer (the manual: "up to 5 tags").
pub const MAX_TAGS: usize = 5;
/// Longest tag.
pub const MAX_TAG_LEN: usize = 32;
/// Longest name, reseller or provider.
pub const MAX_NAME_LEN: usize = 255;
/// Longest service user name.
pub const MAX_SERVICE_USER_LEN: usize = 64;
/// Longest service password.
pub const MAX_SERVICE_PASSWORD_LEN: usize = 128;
/// Phone: at most this many digits (E.164), and this many characters with
/// separators.
pub const MAX_PHONE_DIGITS: usize = 15;
pub const MAX_PHONE_LEN: usize = 32;
/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest address (several lines).
pub const MAX_ADDRESS_LEN: usize = 500;
/// Longest notes.
pub const MAX_NOTES_LEN: usize = 4000;

/// A stored customer, as the router reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    /// Letters and digits, lowercase.
    pub id: String,
    pub name: String,
    /// Owner name of the reseller's proxy account.
    pub reseller: String,
    /// Owner name of the distributor's proxy account, if there is one.
    pub provider: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Customer {
    /// Whether the proxy account of `owner` may reach this customer's
    /// systems: it must be the account of its reseller or of its provider
    /// (DESIGN.md, "Who may go where", rule 2).
    pub fn is_served_by(&self, owner: &str) -> bool {
        self.reseller == owner || self.provider.as_deref() == Some(owner)
    }
}

/// The manual's customer account settings besides name, reseller and
/// provider. Empty strings mean "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CustomerSettings {
    /// The IP Office service user comgate presents (the manual's default
    /// is COMAdmin).
    pub service_user: String,
    /// At most 5, each trimmed and non-empty; sorted without duplicates
    /// once stored.
    pub tags: Vec<String>,
    pub phone: String,
    pub email: String,
    /// May span lines.
    pub address: String,
    /// May span lines.
    pub notes: String,
}

/// A customer with its account settings: what the admin plane shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerDetails {
    #[serde(flatten)]
    pub customer: Customer,
    #[serde(flatten)]
    pub settings: CustomerSettings,
    /// Whether a service password is stored (never the password itself).
    pub has_service_password: bool,
}

/// A service user password in memory: `Debug` never shows it, and it does
/// not serialize.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ServicePassword(String);

impl ServicePassword {
    pub fn new(password: impl Into<String>) -> ServicePassword {
        ServicePassword(password.into())
    }

    /// The password itself, to present to the system.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ServicePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServicePassword(<redacted>)")
    }
}

impl From<&str> for ServicePassword {
    fn from(s: &str) -> Self {
        ServicePassword(s.to_owned())
    }
}

impl From<String> for ServicePassword {
    fn from(s: String) -> Self {
        ServicePassword(s)
    }
}

/// What adding a customer supplies (`comgate admin customer add` gives the
/// first four; the rest default to "not given").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCustomer {
    /// Letters and digits; any case (stored lowercase).
    pub id: String,
    pub name: String,
    pub reseller: String,
    /// `None` or blank: no distributor.
    pub provider: Option<String>,
    pub settings: CustomerSettings,
    /// Stored sealed; needs the store's seal key.
    pub service_password: Option<ServicePassword>,
}

/// What [`Store::update_customer`] changes: each `Some` replaces that
/// field, `None` keeps it. The id never changes (it is in every
/// maintenance address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerChanges {
    pub name: Option<String>,
    pub reseller: Option<String>,
    /// `Some(None)` (or blank) removes the distributor.
    pub provider: Option<Option<String>>,
    pub service_user: Option<String>,
    /// `Some(None)` removes the stored password.
    pub service_password: Option<Option<ServicePassword>>,
    pub tags: Option<Vec<String>>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub notes: Option<String>,
}

fn invalid(field: CustomerField, reason: &'static str) -> StoreError {
    StoreError::InvalidCustomerField { field, reason }
}

/// No control characters at all (`multiline`: except line breaks and tabs),
/// and at most `max` characters.
fn check_text(
    field: CustomerField,
    value: &str,
    max: usize,
    too_long: &'static str,
    multiline: bool,
) -> Result<(), StoreError> {
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(invalid(
            field,
            if multiline {
                "must not contain control characters other than line breaks and tabs"
            } else {
                "must not contain control characters"
            },
        ));
    }
    if value.chars().count() > max {
        return Err(invalid(field, too_long));
    }
    Ok(())
}

fn check_phone(value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Ok(());
    }
    let rest = value.strip_prefix('+').unwrap_or(value);
    let well_formed = rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.' | '/'));
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    if !well_formed || digits == 0 {
        return Err(invalid(
            CustomerField::Phone,
            "must be digits (optionally after a leading +), with spaces, - ( ) . / between them",
        ));
    }
    if digits > MAX_PHONE_DIGITS || value.chars().count() > MAX_PHONE_LEN {
        return Err(invalid(
            CustomerField::Phone,
            "must be at most 15 digits and 32 characters",
        ));
    }
    Ok(())
}

fn check_email(value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.chars().count() > MAX_EMAIL_LEN {
        return Err(invalid(
            CustomerField::Email,
            "must be at most 254 characters",
        ));
    }
    let well_formed = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(invalid(
            CustomerField::Email,
            "must be an address like name@example.com",
        ));
    }
    Ok(())
}

/// `settings` as stored: trimmed, tags sorted without duplicates, every
/// rule checked (naming the field).
fn validated(mut settings: CustomerSettings) -> Result<CustomerSettings, StoreError> {
    settings.service_user = settings.service_user.trim().to_owned();
    check_text(
        CustomerField::ServiceUser,
        &settings.service_user,
        MAX_SERVICE_USER_LEN,
        "must be at most 64 characters",
        false,
    )?;

    let mut tags = BTreeSet::new();
    for tag in &settings.tags {
        let tag = tag.trim();
        if tag.is_empty() {
            return Err(invalid(CustomerField::Tags, "a tag must not be empty"));
        }
        check_text(
            CustomerField::Tags,
            tag,
            MAX_TAG_LEN,
            "a tag must be at most 32 characters",
            false,
        )?;
        tags.insert(tag.to_owned());
    }
    if tags.len() > MAX_TAGS {
        return Err(invalid(CustomerField::Tags, "at most 5 tags per customer"));
    }
    settings.tags = tags.into_iter().collect();

    settings.phone = settings.phone.trim().to_owned();
    check_phone(&settings.phone)?;
    settings.email = settings.email.trim().to_owned();
    check_email(&settings.email)?;
    settings.address = settings.address.trim().to_owned();
    check_text(
        CustomerField::Address,
        &settings.address,
        MAX_ADDRESS_LEN,
        "must be at most 500 characters",
        true,
    )?;
    settings.notes = settings.notes.trim().to_owned();
    check_text(
        CustomerField::Notes,
        &settings.notes,
        MAX_NOTES_LEN,
        "must be at most 4000 characters",
        true,
    )?;
    Ok(settings)
}

/// Name and reseller: required, trimmed, at most 255 characters.
fn checked_name(field: CustomerField, value: &str) -> Result<String, StoreError> {
    let value = required(field.as_str(), value)?;
    check_text(
        field,
        &value,
        MAX_NAME_LEN,
        "must be at most 255 characters",
        false,
    )?;
    Ok(value)
}

/// Provider: optional (blank is none), otherwise like a name.
fn checked_provider(value: Option<&str>) -> Result<Option<String>, StoreError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(p) => checked_name(CustomerField::Provider, p).map(Some),
    }
}

fn checked_password(password: &ServicePassword) -> Result<(), StoreError> {
    let value = password.expose();
    if value.is_empty() {
        return Err(invalid(
            CustomerField::ServicePassword,
            "must not be empty (remove it instead)",
        ));
    }
    check_text(
        CustomerField::ServicePassword,
        value,
        MAX_SERVICE_PASSWORD_LEN,
        "must be at most 128 characters",
        false,
    )
}

/// What a service password is sealed for: its customer, so that a sealed
/// value copied to another customer's row does not open there.
fn seal_context(customer_id: &str) -> String {
    format!("customer:{customer_id}:service_password")
}

macro_rules! columns {
    () => {
        "id, name, reseller, provider, created_at, updated_at"
    };
}

/// The customer columns with the account settings (not the tags, not the
/// sealed password: whether there is one).
macro_rules! detail_columns {
    () => {
        "id, name, reseller, provider, created_at, updated_at, service_user, phone, email, \
         address, notes, \
         CAST(CASE WHEN service_password IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_service_password"
    };
}
pub(super) use detail_columns;

pub(super) const BY_ID: &str = concat!("SELECT ", columns!(), " FROM customers WHERE id = $1");
const DETAILS_BY_ID: &str = concat!(
    "SELECT ",
    detail_columns!(),
    " FROM customers WHERE id = $1"
);
const ALL: &str = concat!("SELECT ", columns!(), " FROM customers");
const INSERT: &str = concat!(
    "INSERT INTO customers (id, name, reseller, provider, created_at, updated_at, service_user, ",
    "service_password, phone, email, address, notes) ",
    "VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11)"
);
const UPDATE: &str = "UPDATE customers SET name = $2, reseller = $3, provider = $4, \
     updated_at = $5, service_user = $6, phone = $7, email = $8, address = $9, notes = $10 \
     WHERE id = $1";
const SET_PASSWORD: &str = "UPDATE customers SET service_password = $2 WHERE id = $1";
const PASSWORD: &str = "SELECT service_password FROM customers WHERE id = $1";
const DELETE: &str = "DELETE FROM customers WHERE id = $1";
const EXISTS: &str = "SELECT 1 FROM customers WHERE id = $1";
const TAGS_OF: &str = "SELECT tag FROM customer_tags WHERE customer_id = $1";
const DELETE_TAGS: &str = "DELETE FROM customer_tags WHERE customer_id = $1";
const INSERT_TAG: &str = "INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2)";

/// Stores the tags of customer `id` (inside the caller's transaction).
macro_rules! insert_tags {
    ($conn:expr, $id:expr, $tags:expr) => {
        for tag in $tags {
            sqlx::query(INSERT_TAG)
                .bind($id)
                .bind(tag)
                .execute($conn)
                .await?;
        }
    };
}

fn from_row(row: &impl StoreRow) -> Result<Customer, sqlx::Error> {
    Ok(Customer {
        id: row.col("id")?,
        name: row.col("name")?,
        reseller: row.col("reseller")?,
        provider: row.col("provider")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

/// A row of `detail_columns!`, without its tags (read separately).
pub(super) fn details_from_row(row: &impl StoreRow) -> Result<CustomerDetails, sqlx::Error> {
    let has_password: i64 = row.col("has_service_password")?;
    Ok(CustomerDetails {
        customer: from_row(row)?,
        settings: CustomerSettings {
            service_user: row.col("service_user")?,
            tags: Vec::new(),
            phone: row.col("phone")?,
            email: row.col("email")?,
            address: row.col("address")?,
            notes: row.col("notes")?,
        },
        has_service_password: has_password != 0,
    })
}

impl Store {
    /// The sealed form of `password` for customer `id`; needs the seal key.
    fn seal_password(&self, id: &str, password: &ServicePassword) -> Result<String, StoreError> {
        let key = self.seal_key.as_ref().ok_or(StoreError::NoSealKey)?;
        Ok(key.seal(&seal_context(id), password.expose())?)
    }

    /// Adds a customer with its account settings. The id must be new
    /// (case-insensitively); a service password needs the seal key. Every
    /// field is checked before anything is written.
    pub async fn add_customer(&self, new: NewCustomer) -> Result<Customer, StoreError> {
        let id = normalize_customer_id(&new.id)?;
        let name = checked_name(CustomerField::Name, &new.name)?;
        let reseller = checked_name(CustomerField::Reseller, &new.reseller)?;
        let provider = checked_provider(new.provider.as_deref())?;
        let settings = validated(new.settings)?;
        let sealed = match &new.service_password {
            Some(password) => {
                checked_password(password)?;
                Some(self.seal_password(&id, password)?)
            }
            None => None,
        };
        let at = now();
        let result: Result<(), sqlx::Error> = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(INSERT)
                    .bind(&id)
                    .bind(&name)
                    .bind(&reseller)
                    .bind(&provider)
                    .bind(at)
                    .bind(&settings.service_user)
                    .bind(&sealed)
                    .bind(&settings.phone)
                    .bind(&settings.email)
                    .bind(&settings.address)
                    .bind(&settings.notes)
                    .execute(&mut *tx)
                    .await?;
                insert_tags!(&mut *tx, &id, &settings.tags);
                tx.commit().await
            }
            .await
        });
        match result {
            Ok(()) => {
                tracing::info!(customer = %id, %reseller, "customer added");
                Ok(Customer {
                    id,
                    name,
                    reseller,
                    provider,
                    created_at: at,
                    updated_at: at,
                })
            }
            Err(e) if is_unique_violation(&e) => Err(StoreError::DuplicateCustomer(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// The customer with this id (any case), if any. Indexed: the router
    /// calls this on every CONNECT.
    pub async fn customer(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        if unstorable(id) {
            return Ok(None);
        }
        let customer = on_pool!(self, |pool| {
            let row = sqlx::query(BY_ID)
                .bind(lookup_key(id))
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(from_row).transpose()?
        });
        Ok(customer)
    }

    /// The customer with this id (any case) and its account settings.
    pub async fn customer_details(&self, id: &str) -> Result<Option<CustomerDetails>, StoreError> {
        if unstorable(id) {
            return Ok(None);
        }
        let id = lookup_key(id);
        let found = on_pool!(self, |pool| {
            let row = sqlx::query(DETAILS_BY_ID)
                .bind(&id)
                .fetch_optional(pool)
                .await?;
            match row.as_ref().map(details_from_row).transpose()? {
                Some(details) => {
                    let tags: Vec<String> = sqlx::query_scalar(TAGS_OF)
                        .bind(&id)
                        .fetch_all(pool)
                        .await?;
                    Some((details, tags))
                }
                None => None,
            }
        });
        Ok(found.map(|(mut details, mut tags)| {
            tags.sort();
            details.settings.tags = tags;
            details
        }))
    }

    /// Changes what `changes` names, checking every field as
    /// [`Store::add_customer`] does; nothing is written if one is wrong.
    pub async fn update_customer(
        &self,
        id: &str,
        changes: CustomerChanges,
    ) -> Result<CustomerDetails, StoreError> {
        let current = self
            .customer_details(id)
            .await?
            .ok_or_else(|| StoreError::UnknownCustomer(id.to_owned()))?;
        let CustomerDetails {
            customer,
            settings,
            has_service_password,
        } = current;
        let CustomerChanges {
            name,
            reseller,
            provider,
            service_user,
            service_password,
            tags,
            phone,
            email,
            address,
            notes,
        } = changes;
        let name = match name {
            Some(name) => checked_name(CustomerField::Name, &name)?,
            None => customer.name.clone(),
        };
        let reseller = match reseller {
            Some(reseller) => checked_name(CustomerField::Reseller, &reseller)?,
            None => customer.reseller.clone(),
        };
        let provider = match provider {
            Some(provider) => checked_provider(provider.as_deref())?,
            None => customer.provider.clone(),
        };
        let mut settings = settings;
        macro_rules! apply {
            ($($field:ident),*) => {$(
                if let Some(value) = $field {
                    settings.$field = value;
                }
            )*};
        }
        apply!(service_user, tags, phone, email, address, notes);
        let settings = validated(settings)?;
        // Some(Some(sealed)): set; Some(None): remove; None: keep.
        let password: Option<Option<String>> = match &service_password {
            Some(Some(password)) => {
                checked_password(password)?;
                Some(Some(self.seal_password(&customer.id, password)?))
            }
            Some(None) => Some(None),
            None => None,
        };
        let at = now();
        let updated: u64 = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let done = sqlx::query(UPDATE)
                    .bind(&customer.id)
                    .bind(&name)
                    .bind(&reseller)
                    .bind(&provider)
                    .bind(at)
                    .bind(&settings.service_user)
                    .bind(&settings.phone)
                    .bind(&settings.email)
                    .bind(&settings.address)
                    .bind(&settings.notes)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if let Some(sealed) = &password {
                    sqlx::query(SET_PASSWORD)
                        .bind(&customer.id)
                        .bind(sealed)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(DELETE_TAGS)
                    .bind(&customer.id)
                    .execute(&mut *tx)
                    .await?;
                insert_tags!(&mut *tx, &customer.id, &settings.tags);
                tx.commit().await?;
                Ok::<_, sqlx::Error>(done)
            }
            .await?
        });
        if updated == 0 {
            // Deleted by another process since it was read.
            return Err(StoreError::UnknownCustomer(id.to_owned()));
        }
        tracing::info!(customer = %customer.id, "customer updated");
        Ok(CustomerDetails {
            customer: Customer {
                name,
                reseller,
                provider,
                updated_at: at,
                ..customer
            },
            settings,
            has_service_password: match password {
                Some(sealed) => sealed.is_some(),
                None => has_service_password,
            },
        })
    }

    /// Deletes a customer with its systems, their alarms, its tags and its
    /// assignments.
    pub async fn delete_customer(&self, id: &str) -> Result<(), StoreError> {
        if unstorable(id) {
            return Err(StoreError::UnknownCustomer(id.to_owned()));
        }
        let deleted = on_pool!(self, |pool| sqlx::query(DELETE)
            .bind(lookup_key(id))
            .execute(pool)
            .await?
            .rows_affected());
        if deleted == 0 {
            return Err(StoreError::UnknownCustomer(id.to_owned()));
        }
        tracing::info!(customer = %lookup_key(id), "customer deleted");
        Ok(())
    }

    /// The service password of a customer, opened with the seal key: the
    /// one place it is revealed. `None`: the customer has none.
    pub async fn reveal_service_password(
        &self,
        id: &str,
    ) -> Result<Option<ServicePassword>, StoreError> {
        let key = self.seal_key.clone().ok_or(StoreError::NoSealKey)?;
        if unstorable(id) {
            return Err(StoreError::UnknownCustomer(id.to_owned()));
        }
        let customer = lookup_key(id);
        let row: Option<Option<String>> = on_pool!(self, |pool| sqlx::query_scalar(PASSWORD)
            .bind(&customer)
            .fetch_optional(pool)
            .await?);
        let sealed = row.ok_or_else(|| StoreError::UnknownCustomer(id.to_owned()))?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        key.unseal(&seal_context(&customer), &sealed)
            .map(|plain| Some(ServicePassword(plain)))
            .map_err(|reason| StoreError::Unseal { customer, reason })
    }

    /// All customers, by id.
    pub async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        let mut customers: Vec<Customer> = on_pool!(self, |pool| {
            let rows = sqlx::query(ALL).fetch_all(pool).await?;
            rows.iter().map(from_row).collect::<Result<_, _>>()?
        });
        customers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(customers)
    }

    /// Whether the customer with this stored (lowercase) id exists.
    pub(super) async fn customer_exists(&self, id: &str) -> Result<bool, StoreError> {
        if unstorable(id) {
            return Ok(false);
        }
        let row = on_pool!(self, |pool| sqlx::query(EXISTS)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .is_some());
        Ok(row)
    }
}
