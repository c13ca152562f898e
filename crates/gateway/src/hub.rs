//! The hub: which system is connected right now, over which websocket, and
//! with which remote-operations settings.
//!
//! One entry per (customer, system). A second agent for the same system
//! replaces the first cleanly: the new session is registered, then the old
//! one is told to go away; when a session ends it removes its entry only if
//! it is still the registered one (its generation), so a late-ending old
//! session never unregisters its successor.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dashmap::DashMap;
use tunnel_proto::handshake::{feature, Hello, SiteSettings};
use tunnel_proto::mux::MuxHandle;

use crate::site_threads::SiteHome;

/// A system, as the maint address names it (both lowercase).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SiteKey {
    pub customer: String,
    pub system: String,
}

impl std::fmt::Display for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.customer, self.system)
    }
}

/// One connected site agent.
pub struct Site {
    pub key: SiteKey,
    /// The system's id in the store.
    pub system_id: i64,
    pub generation: u64,
    pub mux: MuxHandle,
    pub settings: SiteSettings,
    /// The agent announced `central_streams`: it checks Centralized
    /// Management itself, so the central-management proxy may open streams
    /// to it (an older agent would close the session on such an OPEN).
    pub central_streams: bool,
    pub peer: SocketAddr,
    pub connected_at: SystemTime,
    /// The site thread its session runs on; its tunnels are relayed there.
    pub home: SiteHome,
    /// The token its welcome offered for the quick lane, until the agent
    /// joins with it (once).
    quick_lane: Mutex<Option<QuickLaneToken>>,
}

/// What a quick lane's hello must show (random, 128 bits).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct QuickLaneToken([u8; 16]);

impl QuickLaneToken {
    pub fn random() -> Self {
        QuickLaneToken(rand::random())
    }

    /// As it travels in the handshake: 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 32 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(QuickLaneToken(bytes))
    }
}

impl Site {
    /// Records the token this session's welcome offered for its quick lane.
    pub fn offer_quick_lane(&self, token: QuickLaneToken) {
        *self.quick_lane.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
    }

    /// Whether `token` is the one offered to this session, and not used
    /// yet; a match uses it up.
    pub fn take_quick_lane(&self, token: QuickLaneToken) -> bool {
        use subtle::ConstantTimeEq;
        let mut offered = self.quick_lane.lock().unwrap_or_else(|p| p.into_inner());
        let matches = offered.is_some_and(|t| bool::from(t.0.ct_eq(&token.0)));
        if matches {
            *offered = None;
        }
        matches
    }
}

/// GOAWAY code sent to a session replaced by a newer one for the same system
/// (above tunnel-proto's own codes, which are below 0x100).
pub const GOAWAY_REPLACED: u32 = 0x100;

#[derive(Default)]
pub struct Hub {
    sites: DashMap<SiteKey, Arc<Site>>,
    next_generation: AtomicU64,
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Hub::default())
    }

    /// Registers a new session, replacing (and closing) any previous one.
    pub fn register(
        &self,
        key: SiteKey,
        system_id: i64,
        mux: MuxHandle,
        hello: &Hello,
        peer: SocketAddr,
        home: SiteHome,
    ) -> Arc<Site> {
        let site = Arc::new(Site {
            key: key.clone(),
            system_id,
            generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
            mux,
            settings: hello.settings.clone(),
            central_streams: hello.has_feature(feature::CENTRAL_STREAMS),
            peer,
            connected_at: SystemTime::now(),
            home,
            quick_lane: Mutex::new(None),
        });
        if let Some(old) = self.sites.insert(key, site.clone()) {
            tracing::info!(site = %old.key, old_peer = %old.peer, new_peer = %peer, "a new agent replaces the connected one");
            old.mux.close(
                GOAWAY_REPLACED,
                "replaced by a newer connection of the same system",
            );
        }
        site
    }

    /// The connected session of a system, if any.
    pub fn get(&self, key: &SiteKey) -> Option<Arc<Site>> {
        self.sites
            .get(key)
            .map(|s| s.clone())
            .filter(|s| !s.mux.is_closed())
    }

    /// Removes `site` if it is still the registered session of its system.
    pub fn remove(&self, site: &Site) {
        self.sites.remove_if(&site.key, |_, current| {
            current.generation == site.generation
        });
    }

    /// The store ids of the systems connected now.
    pub fn connected_system_ids(&self) -> Vec<i64> {
        self.sites
            .iter()
            .filter(|s| !s.mux.is_closed())
            .map(|s| s.system_id)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }
}

/// The hub as the admin API sees it: which systems are connected now.
pub struct HubStatus(pub Arc<Hub>);

impl admin::api::LiveStatus for HubStatus {
    fn is_connected(&self, customer: &str, system_label: &str) -> bool {
        self.0
            .get(&SiteKey {
                customer: customer.to_owned(),
                system: system_label.to_owned(),
            })
            .is_some()
    }
}
