//! `footfall site add` and `footfall site list`.

use anyhow::Result;
use footfall_core::site::Site;
use footfall_server::control::{Request, SiteAdded};
use serde_json::{Value, json};

use super::request;
use crate::config::Settings;
use crate::table;

pub async fn add(
    settings: &Settings,
    domain: String,
    timezone: Option<String>,
    public: Option<bool>,
) -> Result<()> {
    let answer = request(settings, Request::SiteAdd { domain, timezone, public }).await?;
    let SiteAdded { site, replaced } = serde_json::from_value(answer)?;
    eprintln!(
        "{} site {} (timezone {}, {})",
        if replaced { "updated" } else { "added" },
        site.domain,
        site.timezone,
        if site.public { "public stats" } else { "stats need an API key" }
    );
    Ok(())
}

pub async fn list(settings: &Settings, json: bool) -> Result<()> {
    let answer = request(settings, Request::SiteList).await?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let sites: Vec<Site> = serde_json::from_value(answer)?;
    if sites.is_empty() {
        eprintln!("no sites yet; add one with `footfall site add DOMAIN`");
        return Ok(());
    }
    let headers = ["domain", "timezone", "public"].map(String::from);
    let rows: Vec<Vec<Value>> = sites
        .into_iter()
        .map(|s| {
            vec![json!(s.domain), json!(s.timezone), json!(if s.public { "yes" } else { "no" })]
        })
        .collect();
    print!("{}", table::render(&headers, &rows));
    Ok(())
}
