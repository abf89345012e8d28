//! footfall's HTTP surface: the collector endpoints, the browser tracker, the
//! Plausible-compatible query API, health and Prometheus metrics, all over one shared
//! [`state::AppState`].

pub mod account;
pub mod assets;
pub mod auth;
pub mod collect;
pub mod control;
pub mod demo;
pub mod engine;
pub mod error;
pub mod segments;
pub mod serve;
pub mod state;
pub mod stats;
pub mod throttle;
