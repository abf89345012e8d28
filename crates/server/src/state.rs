//! What every request handler shares: the store, the known sites, the identity salts and the
//! server's settings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use footfall_core::classify::agent::Agents;
use footfall_core::classify::geo::GeoDb;
use footfall_core::identity::Salts;
use footfall_core::site::Site;
use footfall_store::Store;

use crate::segments::{self, Segments};
use crate::throttle::LoginThrottle;

/// Server settings that handlers consult.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Take the client IP from `X-Forwarded-For` (set only behind a proxy you run).
    pub trust_proxy: bool,
    /// How far a browser-supplied `ts` may be from server time and still be used, ms.
    pub max_clock_skew_ms: i64,
    /// Session inactivity timeout, ms.
    pub session_timeout_ms: i64,
    /// A request header, lower case, that a proxy in front sets to the visitor's country code
    /// (`cf-ipcountry`); it wins over `geo`.
    pub country_header: Option<String>,
    /// Where visitors are, by IP address.
    pub geo: Option<Arc<GeoDb>>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            trust_proxy: false,
            max_clock_skew_ms: 5 * 60_000,
            session_timeout_ms: 30 * 60_000,
            country_header: None,
            geo: None,
        }
    }
}

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: ServerConfig,
    /// Sites by domain; kept in memory, written through to the store.
    pub sites: RwLock<HashMap<String, Site>>,
    /// Current identity secrets; rotated at UTC midnight and persisted.
    pub salts: RwLock<Salts>,
    /// Bumped whenever a site is added or changed, so the pipeline picks up its timezone.
    pub sites_generation: AtomicU64,
    /// One past the highest raw-log offset acknowledged since this server started.
    pub appended: AtomicU64,
    /// Held for writing while the pipeline applies a write batch and for reading while a query
    /// reads, so that a query's several reads all see the rollups between two batches: never
    /// an event's pageview without its visitor.
    pub rollups: tokio::sync::RwLock<()>,
    /// Devices, browsers and OSes by user agent, each parsed once.
    pub agents: Agents,
    /// What filtered queries scan.
    pub segments: Segments,
    /// Recent failed logins, which hold up password guessing.
    pub logins: LoginThrottle,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        config: ServerConfig,
        sites: Vec<Site>,
        salts: Salts,
    ) -> AppState {
        AppState {
            store,
            segments: Segments::new(config.session_timeout_ms, segments::DEFAULT_BUDGET_BYTES),
            config,
            sites: RwLock::new(sites.into_iter().map(|s| (s.domain.clone(), s)).collect()),
            salts: RwLock::new(salts),
            sites_generation: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            rollups: tokio::sync::RwLock::new(()),
            agents: Agents::new(),
            logins: LoginThrottle::default(),
        }
    }

    pub fn site(&self, domain: &str) -> Option<Site> {
        self.sites.read().expect("sites lock").get(domain).cloned()
    }

    pub fn all_sites(&self) -> Vec<Site> {
        let mut sites: Vec<Site> =
            self.sites.read().expect("sites lock").values().cloned().collect();
        sites.sort_by(|a, b| a.domain.cmp(&b.domain));
        sites
    }

    /// Adds or replaces a site: in the store first, so a site that answers requests is never
    /// lost on restart.
    pub async fn put_site(&self, site: Site) -> Result<(), footfall_store::StoreError> {
        self.store.put_site(&site).await?;
        self.sites.write().expect("sites lock").insert(site.domain.clone(), site);
        self.sites_generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Appends events to the raw log (durably, see [`Store::append`]) and moves the appended
    /// offset, against which the pipeline's lag is measured. Appends finish out of order: the
    /// gauge shows the highest offset acknowledged so far.
    pub async fn append(
        &self,
        events: Vec<footfall_core::event::Event>,
    ) -> Result<std::ops::Range<u64>, footfall_store::StoreError> {
        let offsets = self.store.append(events).await?;
        let end = self.appended.fetch_max(offsets.end, Ordering::Relaxed).max(offsets.end);
        metrics::gauge!("footfall_log_appended_offset").set((end - 1) as f64);
        Ok(offsets)
    }

    /// Takes the sites as the store has them now: new and changed ones are used from now on.
    pub fn refresh_sites(&self, sites: Vec<Site>) {
        let mut known = self.sites.write().expect("sites lock");
        let mut changed = false;
        for site in sites {
            if known.get(&site.domain) != Some(&site) {
                known.insert(site.domain.clone(), site);
                changed = true;
            }
        }
        if changed {
            self.sites_generation.fetch_add(1, Ordering::Release);
        }
    }
}
