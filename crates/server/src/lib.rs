//! footfall's HTTP surface: collector endpoints, the Plausible-compatible query API, health and metrics.
