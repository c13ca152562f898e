//! Systems: the phone systems and servers of a customer, each reached
//! through its own site agent. A system's `label` is the system part of its
//! maintenance address; the customer's primary system is the one an address
//! without a system part means.
//!
//! A customer's first system does not become primary by itself: `primary` is
//! always what the caller says (`system add --primary`), so that adding
//! systems in a different order never changes where an existing address
//! leads. Until a customer has a primary system, `<customer-id>.maint...`
//! finds nothing.

use serde::Serialize;

use super::{is_foreign_key_violation, is_unique_violation, now, Store, StoreRow};
use crate::names::{lookup_key, required, system_label};
use crate::password::{hash_secret_async, verify_no_secret_async, verify_password_async};
use crate::secret::generate_agent_secret;
use crate::{PhcHash, StoreError};

/// Longest profile ("IP500 V2", "Server Edition", "ACCS", "Legacy", ...).
pub const MAX_PROFILE_LEN: usize = 64;
/// Longest software version string.
pub const MAX_VERSION_LEN: usize = 64;

/// The manual's system types: the primary server of a customer, and the
/// secondary servers and expansion systems of a Server Edition network.
/// `Primary` is exactly [`System::is_primary`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    Primary,
    Secondary,
    Expansion,
}

impl SystemKind {
    pub const ALL: [SystemKind; 3] = [
        SystemKind::Primary,
        SystemKind::Secondary,
        SystemKind::Expansion,
    ];

    /// As stored and as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemKind::Primary => "primary",
            SystemKind::Secondary => "secondary",
            SystemKind::Expansion => "expansion",
        }
    }

    pub fn parse(s: &str) -> Option<SystemKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for SystemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind column as read: NULL (a row written without it, by a
/// migration or by hand) follows `is_primary`.
pub(super) fn kind_from_row(
    kind: Option<String>,
    is_primary: bool,
) -> Result<SystemKind, sqlx::Error> {
    match kind {
        None if is_primary => Ok(SystemKind::Primary),
        None => Ok(SystemKind::Secondary),
        Some(kind) => SystemKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown system kind {kind:?}").into())),
    }
}

/// A system to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSystem {
    pub name: String,
    pub kind: SystemKind,
    /// '' when unknown.
    pub profile: String,
    /// '' when unknown.
    pub version: String,
}

impl NewSystem {
    /// A system of `kind` without profile or version.
    pub fn new(name: impl Into<String>, kind: SystemKind) -> NewSystem {
        NewSystem {
            name: name.into(),
            kind,
            profile: String::new(),
            version: String::new(),
        }
    }
}

/// What [`Store::update_system`] changes: each `Some` replaces that field.
/// The name (and so the label, part of the maintenance address) does not
/// change here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemChanges {
    /// Becoming `Primary` needs the customer to have no primary system;
    /// leaving it leaves the customer without one.
    pub kind: Option<SystemKind>,
    pub profile: Option<String>,
    /// The software version, as entered or as the site reports it.
    pub version: Option<String>,
}

/// Profile and version: trimmed, no control characters, at most 64
/// characters (both limits are 64).
fn checked_short_text(field: &'static str, value: &str) -> Result<String, StoreError> {
    const _: () = assert!(MAX_PROFILE_LEN == 64 && MAX_VERSION_LEN == 64);
    let value = value.trim();
    if value.chars().any(char::is_control) {
        return Err(StoreError::InvalidField {
            field,
            reason: "must not contain control characters",
        });
    }
    if value.chars().count() > MAX_PROFILE_LEN {
        return Err(StoreError::InvalidField {
            field,
            reason: "must be at most 64 characters",
        });
    }
    Ok(value.to_owned())
}

/// A stored system.
#[derive(Debug, Clone, Serialize)]
pub struct System {
    pub id: i64,
    pub customer_id: String,
    /// The name as given ("IPO Main").
    pub name: String,
    /// The DNS-label form of the name ("ipo-main"), unique per customer.
    pub label: String,
    /// Whether an address without a system part means this system.
    pub is_primary: bool,
    /// `Primary` exactly when `is_primary`.
    pub kind: SystemKind,
    /// The manual's "Profile" ('' when unknown).
    pub profile: String,
    /// Software version ('' when unknown).
    pub version: String,
    /// argon2 hash of the agent secret.
    #[serde(skip)]
    pub secret_hash: PhcHash,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! columns {
    () => {
        "id, customer_id, name, label, is_primary, secret_hash, created_at, updated_at, kind, \
         profile, version"
    };
}

const OF_CUSTOMER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM systems WHERE customer_id = $1"
);
const BY_ID: &str = concat!("SELECT ", columns!(), " FROM systems WHERE id = $1");
const INSERT: &str = concat!(
    "INSERT INTO systems (id, customer_id, name, label, is_primary, secret_hash, created_at, ",
    "updated_at, kind, profile, version) ",
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10) RETURNING ",
    columns!()
);
const UPDATE: &str = "UPDATE systems SET kind = $2, is_primary = $3, profile = $4, version = $5, \
     updated_at = $6 WHERE id = $1";
const SET_SECRET: &str = "UPDATE systems SET secret_hash = $1, updated_at = $2 WHERE id = $3";

fn from_row(row: &impl StoreRow) -> Result<System, sqlx::Error> {
    let is_primary = row.col("is_primary")?;
    Ok(System {
        id: row.col("id")?,
        customer_id: row.col("customer_id")?,
        name: row.col("name")?,
        label: row.col("label")?,
        is_primary,
        kind: kind_from_row(row.col("kind")?, is_primary)?,
        profile: row.col("profile")?,
        version: row.col("version")?,
        secret_hash: PhcHash::from_phc(row.col("secret_hash")?),
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

impl Store {
    /// Adds a system to a customer and returns it with its new agent secret.
    /// The secret is stored only as a hash: this is the one time it is seen.
    ///
    /// Errors: `UnknownCustomer`, `InvalidSystemName` (no letter or digit),
    /// `DuplicateSystem` (the label is taken), `PrimaryExists`.
    pub async fn add_system(
        &self,
        customer_id: &str,
        name: &str,
        primary: bool,
    ) -> Result<(System, String), StoreError> {
        let kind = if primary {
            SystemKind::Primary
        } else {
            SystemKind::Secondary
        };
        self.add_system_with(customer_id, NewSystem::new(name, kind))
            .await
    }

    /// [`Store::add_system`] with the system's kind, profile and version.
    pub async fn add_system_with(
        &self,
        customer_id: &str,
        new: NewSystem,
    ) -> Result<(System, String), StoreError> {
        let customer = lookup_key(customer_id);
        let name = required("name", &new.name)?;
        let primary = new.kind == SystemKind::Primary;
        let profile = checked_short_text("profile", &new.profile)?;
        let version = checked_short_text("version", &new.version)?;
        let label = system_label(&name).ok_or_else(|| StoreError::InvalidSystemName {
            name: name.clone(),
            reason: "needs at least one letter or digit",
        })?;
        if !self.customer_exists(&customer).await? {
            return Err(StoreError::UnknownCustomer(customer_id.to_owned()));
        }
        // Before paying for argon2; repeated after a constraint violation.
        self.check_new_system(&customer, &label, primary).await?;

        let secret = generate_agent_secret();
        let hash = hash_secret_async(secret.clone()).await?;
        let id = self.next_id("systems").await?;
        let result = on_pool!(self, |pool| sqlx::query(INSERT)
            .bind(id)
            .bind(&customer)
            .bind(&name)
            .bind(&label)
            .bind(primary)
            .bind(hash.expose())
            .bind(now())
            .bind(new.kind.as_str())
            .bind(&profile)
            .bind(&version)
            .fetch_one(pool)
            .await
            .and_then(|row| from_row(&row)));
        match result {
            Ok(system) => {
                tracing::info!(
                    customer = %system.customer_id,
                    system = %system.label,
                    primary = system.is_primary,
                    "system added"
                );
                Ok((system, secret))
            }
            Err(e) if is_unique_violation(&e) => {
                self.check_new_system(&customer, &label, primary).await?;
                Err(e.into())
            }
            Err(e) if is_foreign_key_violation(&e) => {
                Err(StoreError::UnknownCustomer(customer_id.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The error a new system `label` (primary or not) would meet, if any.
    async fn check_new_system(
        &self,
        customer: &str,
        label: &str,
        primary: bool,
    ) -> Result<(), StoreError> {
        if self.system(customer, Some(label)).await?.is_some() {
            return Err(StoreError::DuplicateSystem {
                customer: customer.to_owned(),
                label: label.to_owned(),
            });
        }
        if primary {
            if let Some(existing) = self.system(customer, None).await? {
                return Err(StoreError::PrimaryExists {
                    customer: customer.to_owned(),
                    label: existing.label,
                });
            }
        }
        Ok(())
    }

    /// The system with this id, if any.
    pub async fn system_by_id(&self, id: i64) -> Result<Option<System>, StoreError> {
        let system = on_pool!(self, |pool| {
            let row = sqlx::query(BY_ID).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(from_row).transpose()?
        });
        Ok(system)
    }

    /// Changes the kind, profile or version of system `id`.
    ///
    /// Errors: `UnknownSystemId`, `InvalidField` (profile, version),
    /// `PrimaryExists` (another system of the customer is primary).
    pub async fn update_system(
        &self,
        id: i64,
        changes: SystemChanges,
    ) -> Result<System, StoreError> {
        let system = self
            .system_by_id(id)
            .await?
            .ok_or(StoreError::UnknownSystemId(id))?;
        let kind = changes.kind.unwrap_or(system.kind);
        let profile = match &changes.profile {
            Some(profile) => checked_short_text("profile", profile)?,
            None => system.profile.clone(),
        };
        let version = match &changes.version {
            Some(version) => checked_short_text("version", version)?,
            None => system.version.clone(),
        };
        let primary = kind == SystemKind::Primary;
        let becomes_primary = primary && !system.is_primary;
        let primary_error = |existing: System| StoreError::PrimaryExists {
            customer: system.customer_id.clone(),
            label: existing.label,
        };
        if becomes_primary {
            if let Some(existing) = self.system(&system.customer_id, None).await? {
                return Err(primary_error(existing));
            }
        }
        let at = now();
        let result = on_pool!(self, |pool| sqlx::query(UPDATE)
            .bind(id)
            .bind(kind.as_str())
            .bind(primary)
            .bind(&profile)
            .bind(&version)
            .bind(at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()));
        match result {
            Ok(0) => Err(StoreError::UnknownSystemId(id)),
            Ok(_) => {
                tracing::info!(customer = %system.customer_id, system = %system.label, %kind, "system updated");
                Ok(System {
                    is_primary: primary,
                    kind,
                    profile,
                    version,
                    updated_at: at,
                    ..system
                })
            }
            Err(e) if is_unique_violation(&e) && becomes_primary => {
                match self.system(&system.customer_id, None).await? {
                    Some(existing) => Err(primary_error(existing)),
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The system `label` of a customer, or its primary system for `None`.
    /// Ids and labels match case-insensitively; the same indexed look-up as
    /// [`Store::route`], without the customer.
    pub async fn system(
        &self,
        customer_id: &str,
        label: Option<&str>,
    ) -> Result<Option<System>, StoreError> {
        Ok(self
            .route(customer_id, label)
            .await?
            .map(|(_, system)| system))
    }

    /// The systems of a customer, primary first, then by label.
    pub async fn list_systems(&self, customer_id: &str) -> Result<Vec<System>, StoreError> {
        let customer = lookup_key(customer_id);
        if !self.customer_exists(&customer).await? {
            return Err(StoreError::UnknownCustomer(customer_id.to_owned()));
        }
        let mut systems: Vec<System> = on_pool!(self, |pool| {
            let rows = sqlx::query(OF_CUSTOMER)
                .bind(&customer)
                .fetch_all(pool)
                .await?;
            rows.iter().map(from_row).collect::<Result<_, _>>()?
        });
        systems.sort_by(|a, b| (!a.is_primary, &a.label).cmp(&(!b.is_primary, &b.label)));
        Ok(systems)
    }

    /// Replaces the agent secret of a system and returns the new one; the
    /// old one stops working for the next handshake.
    pub async fn rotate_system_secret(
        &self,
        customer_id: &str,
        label: &str,
    ) -> Result<String, StoreError> {
        let system = self.existing_system(customer_id, Some(label)).await?;
        let secret = generate_agent_secret();
        let hash = hash_secret_async(secret.clone()).await?;
        let updated = on_pool!(self, |pool| sqlx::query(SET_SECRET)
            .bind(hash.expose())
            .bind(now())
            .bind(system.id)
            .execute(pool)
            .await?
            .rows_affected());
        if updated == 0 {
            // Deleted between the lookup and the update.
            return Err(unknown_system(customer_id, Some(label)));
        }
        tracing::info!(customer = %system.customer_id, system = %system.label, "agent secret rotated");
        Ok(secret)
    }

    /// The system an agent claims to be, if `secret` is its agent secret.
    /// Takes about the same time whether or not the system exists.
    pub async fn authenticate_system(
        &self,
        customer_id: &str,
        label: Option<&str>,
        secret: &str,
    ) -> Result<Option<System>, StoreError> {
        let Some(system) = self.system(customer_id, label).await? else {
            verify_no_secret_async(secret.to_owned()).await;
            return Ok(None);
        };
        let ok = verify_password_async(system.secret_hash.clone(), secret.to_owned()).await;
        Ok(ok.then_some(system))
    }

    /// Like [`Store::system`], but a missing customer or system is an error
    /// naming it.
    pub async fn existing_system(
        &self,
        customer_id: &str,
        label: Option<&str>,
    ) -> Result<System, StoreError> {
        if let Some(system) = self.system(customer_id, label).await? {
            return Ok(system);
        }
        if !self.customer_exists(&lookup_key(customer_id)).await? {
            return Err(StoreError::UnknownCustomer(customer_id.to_owned()));
        }
        Err(unknown_system(customer_id, label))
    }
}

fn unknown_system(customer_id: &str, label: Option<&str>) -> StoreError {
    StoreError::UnknownSystem {
        customer: customer_id.to_owned(),
        label: label.map(str::to_owned),
    }
}
