//! `footfall serve --demo`: a demo site fed with made-up traffic ([`footfall_core::demo`]), so
//! that a newcomer sees a live dashboard seconds after the first command.
//!
//! The site ([`SITE`]) is registered, public and on UTC, if it is missing. When it has no events
//! in the window of the history, about a month of history is written first; then live visits
//! follow until the feed is stopped. Events take the collector's path as far as there is one
//! without a request: the visitor is identified by a made-up address and a real browser's user
//! agent under the current salts, the user agent is classified by the server's classifier, the
//! referrer and UTM tags become a source and a channel
//! ([`footfall_core::ingest::Incoming::into_event`]), and the events are appended to the raw
//! log, from which the pipeline counts them like any others. The country, region and city are
//! set as a trusted proxy's header or a GeoIP database would set them: a demo has neither.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use footfall_core::demo::{Hit, Params, SITE, Traffic};
use footfall_core::event::{Event, Traits};
use footfall_core::identity::Client;
use footfall_core::site::Site;
use footfall_core::time::{Bucket, Grain, SiteClock};
use footfall_store::StoreError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::now_ms;
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;

/// Events per append while the history is written (a month of it is some tens of thousands),
/// and per read while the log is searched for the site's events.
const HISTORY_BATCH: usize = 2_000;

/// The live feed, running until [`Feed::stop`].
pub struct Feed {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Feed {
    /// Stops the feed once the append under way, if any, is done.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the demo feed failed");
        }
    }
}

/// Registers the demo site if it is missing, writes its history if it has none, and starts the
/// live feed. `listen` is where the server answers, for the line that says where to look.
pub async fn start(
    state: Arc<AppState>,
    listen: SocketAddr,
    params: Params,
    seed: u64,
) -> Result<Feed, StoreError> {
    let site = match state.site(SITE) {
        Some(site) => site,
        None => {
            let site = Site::new(SITE, "UTC", true).expect("the demo site is valid");
            state.put_site(site.clone()).await?;
            site
        }
    };
    let now = now_ms();
    let from = now - params.history_days * DAY_MS;
    let mut traffic = Traffic::new(params, seed, now);
    let mut history = 0;
    // A restart finds the history there already: writing it again would count it twice.
    if !has_events(&state, &site, from).await? {
        let hits = traffic.history();
        history = hits.len();
        append_all(&state, &site, hits).await?;
    }
    let shown = match listen.ip().is_unspecified() {
        true => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        false => listen,
    };
    tracing::info!(
        history_events = history,
        "the demo site {SITE} gets made-up traffic: open http://{shown}/{SITE}"
    );
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(feed(state, site, traffic, stopped));
    Ok(Feed { stop, task })
}

/// Appends live hits as they fall due, until `stop`.
async fn feed(
    state: Arc<AppState>,
    site: Site,
    mut traffic: Traffic,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let wait = Duration::from_millis((traffic.next_due() - now_ms()).max(0) as u64);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = append(&state, &site, traffic.due(now_ms())).await {
            tracing::warn!(error = %e, "the store did not take demo events; they are dropped");
        }
    }
}

/// Whether the site has events since `from_ms`: waiting in the log to be counted, or counted
/// in its day totals. The log is read first, so that an event the pipeline counts meanwhile is
/// in the totals read after.
async fn has_events(state: &AppState, site: &Site, from_ms: i64) -> Result<bool, StoreError> {
    let store = &state.store;
    let mut after = store.applied_offset().await?;
    loop {
        let events = store.unapplied(after, HISTORY_BATCH).await?;
        if events.iter().any(|(_, e)| *e.site == *site.domain && e.ts >= from_ms) {
            return Ok(true);
        }
        match events.last() {
            Some(&(offset, _)) => after = Some(offset),
            None => break,
        }
    }
    let clock = site.clock().unwrap_or_else(|_| SiteClock::utc());
    let (first, today) = (clock.bucket(from_ms, Grain::Day), clock.bucket(now_ms(), Grain::Day));
    let days: Vec<Bucket> = first.through(today).collect();
    Ok(store.totals(&site.domain, &days).await?.iter().any(|c| !c.is_zero()))
}

/// Appends `hits` in order, in batches.
async fn append_all(state: &AppState, site: &Site, hits: Vec<Hit>) -> Result<(), StoreError> {
    let mut hits = hits.into_iter();
    loop {
        let batch: Vec<Hit> = hits.by_ref().take(HISTORY_BATCH).collect();
        if batch.is_empty() {
            return Ok(());
        }
        append(state, site, batch).await?;
    }
}

/// Appends hits to the raw log as the collector appends a request's events (see the module's
/// documentation).
async fn append(state: &AppState, site: &Site, hits: Vec<Hit>) -> Result<(), StoreError> {
    if hits.is_empty() {
        return Ok(());
    }
    let salts = state.salts.read().expect("salts lock").clone();
    let events: Vec<Event> = hits
        .into_iter()
        .map(|Hit { visitor, event }| {
            let mut traits = Traits::of_agent(&state.agents.classify(visitor.user_agent));
            traits.country = Some(visitor.country.into());
            traits.region = Some(visitor.region.into());
            traits.city = Some(visitor.city.into());
            let mut client = Client::new(&salts, &visitor.ip, visitor.user_agent);
            event.into_event(site, &mut client, &traits)
        })
        .collect();
    state.append(events).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::sync::atomic::Ordering;

    use footfall_core::batch::{Dim, Slice};
    use footfall_core::demo::Visitor;
    use footfall_core::event::{ENGAGEMENT, PAGEVIEW};
    use footfall_store::{EmbeddedStore, Store};

    use super::*;
    use crate::engine::{self, PipelineOptions};
    use crate::serve::load_state;
    use crate::state::ServerConfig;

    async fn state(dir: &tempfile::TempDir) -> Arc<AppState> {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        load_state(store, ServerConfig::default(), &[]).await.unwrap()
    }

    /// What the model made of one visit.
    #[derive(Default)]
    struct Visit {
        start: i64,
        /// Its last event's time, engagement reports aside (they are not part of a visit).
        last: i64,
        pageviews: i64,
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_history_is_sessionized_and_counted_as_the_model_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(&dir).await;
        let site = Site::new(SITE, "UTC", true).unwrap();
        state.put_site(site.clone()).await.unwrap();
        let now = now_ms();
        let from = now - 30 * DAY_MS;
        assert!(!has_events(&state, &site, from).await.unwrap());

        let hits = Traffic::new(Params::default(), 1, now).history();
        // A visit begins with a pageview from outside the site; the visitor's next events
        // belong to it until their next such pageview.
        let mut visits: Vec<Visit> = Vec::new();
        let mut open: HashMap<*const Visitor, usize> = HashMap::new();
        let mut pageviews_by_day: BTreeMap<i64, i64> = BTreeMap::new();
        for Hit { visitor, event } in &hits {
            if event.name == ENGAGEMENT {
                continue;
            }
            let pageview = event.name == PAGEVIEW;
            let visitor = Arc::as_ptr(visitor);
            if pageview && event.referrer_host.as_deref() != Some(SITE) {
                open.insert(visitor, visits.len());
                visits.push(Visit { start: event.ts, ..Visit::default() });
            }
            let visit = &mut visits[open[&visitor]];
            visit.last = event.ts;
            visit.pageviews += i64::from(pageview);
            *pageviews_by_day.entry(event.ts.div_euclid(DAY_MS)).or_default() +=
                i64::from(pageview);
        }
        let mut visits_by_day: BTreeMap<i64, i64> = BTreeMap::new();
        for visit in &visits {
            *visits_by_day.entry(visit.start.div_euclid(DAY_MS)).or_default() += 1;
        }
        let bounces = visits.iter().filter(|v| v.pageviews == 1).count() as i64;
        let duration: i64 = visits.iter().map(|v| v.last - v.start).sum();
        let visitors = open.len() as f64;

        append_all(&state, &site, hits).await.unwrap();
        assert!(has_events(&state, &site, from).await.unwrap(), "while waiting in the log");

        let (stop, stopped) = watch::channel(false);
        let options =
            PipelineOptions { flush_interval: Duration::from_millis(20), ..Default::default() };
        let pipeline = tokio::spawn(engine::run_pipeline(state.clone(), options, stopped));
        let last = state.appended.load(Ordering::Relaxed) - 1;
        while state.store.applied_offset().await.unwrap() != Some(last) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(has_events(&state, &site, from).await.unwrap(), "once counted");

        // Each day has its own visits (by when they began) and pageviews.
        let store = &state.store;
        let days: Vec<Bucket> = (from.div_euclid(DAY_MS)..=now.div_euclid(DAY_MS))
            .map(|index| Bucket { grain: Grain::Day, index })
            .collect();
        let totals = store.totals(SITE, &days).await.unwrap();
        for (day, counts) in days.iter().zip(&totals) {
            let expected = |by_day: &BTreeMap<i64, i64>| *by_day.get(&day.index).unwrap_or(&0);
            assert_eq!(counts.pageviews, expected(&pageviews_by_day), "{}", day.label());
            assert_eq!(counts.visits, expected(&visits_by_day), "{}", day.label());
        }
        let sum = |counter: fn(&footfall_store::Counts) -> i64| -> i64 {
            totals.iter().map(counter).sum()
        };
        assert_eq!(sum(|c| c.visits), visits.len() as i64);
        assert_eq!(sum(|c| c.bounces), bounces);
        assert_eq!(sum(|c| c.duration), duration);
        let unique = store.unique_count(SITE, &days, &Slice::Total).await.unwrap() as f64;
        assert!((unique / visitors - 1.0).abs() < 0.03, "{unique} visitors of {visitors}");

        // Classified as the collector classifies requests.
        let values = async |dim: Dim| -> BTreeSet<String> {
            let rows = store.breakdown(SITE, &days, &dim).await.unwrap();
            rows.into_iter().map(|(value, _)| value).collect()
        };
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let sources = [
            "Bing",
            "Direct / None",
            "DuckDuckGo",
            "GitHub",
            "Google",
            "Hacker News",
            "Reddit",
            "Twitter",
            "newsletter",
        ];
        assert_eq!(values(Dim::Source).await, set(&sources));
        let channels = ["Direct", "Email", "Organic Search", "Organic Social"];
        assert_eq!(values(Dim::Channel).await, set(&channels));
        assert_eq!(values(Dim::Device).await, set(&["Desktop", "Mobile", "Tablet"]));
        assert!(values(Dim::Country).await.is_superset(&set(&["US", "DE", "GB", "IN", "JP"])));
        assert!(values(Dim::City).await.contains("Berlin"));
        let names = ["Add to cart", "Outbound Link: Click", "Signup", "pageview"];
        assert_eq!(values(Dim::EventName).await, set(&names));
        assert_eq!(values(Dim::Prop("plan".into())).await, set(&["free", "pro", "team"]));

        stop.send(true).unwrap();
        pipeline.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_restart_writes_no_second_history_and_the_feed_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(&dir).await;
        let listen: SocketAddr = "127.0.0.1:8420".parse().unwrap();
        // A short history and a visit every 20 ms.
        let params = Params { history_days: 2, live_interval_ms: 20.0, ..Params::default() };
        let logged = async |until: i64| state.store.scan_log(SITE, 0, until).await.unwrap().len();

        let started = now_ms();
        let feed = start(state.clone(), listen, params.clone(), 1).await.unwrap();
        assert_eq!(state.site(SITE), Some(Site::new(SITE, "UTC", true).unwrap()));
        let history = logged(started).await;
        // Two days of 300 visits with a few events each.
        assert!(history > 1_000, "{history} events of history");
        tokio::time::sleep(Duration::from_millis(500)).await;
        feed.stop().await;
        let all = logged(i64::MAX).await;
        assert!(all > history + 20, "{} live events", all - history);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(logged(i64::MAX).await, all, "nothing after the stop");

        let restarted = now_ms();
        start(state.clone(), listen, params, 2).await.unwrap().stop().await;
        assert_eq!(logged(restarted).await, all, "no second history");
    }
}
