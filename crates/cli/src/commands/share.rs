//! `footfall share create|list|revoke`: read-only links to a site's dashboard. A link's URL
//! is printed alone on stdout, so that `URL=$(footfall share create SITE)` works.

use anyhow::Result;
use footfall_server::account::ShareLink;
use footfall_server::control::Request;
use serde_json::{Value, json};

use super::{day_of, request};
use crate::config::Settings;
use crate::table;

pub async fn create(
    settings: &Settings,
    site: String,
    name: Option<String>,
    base_url: Option<&str>,
) -> Result<()> {
    let answer = request(settings, Request::ShareCreate { site: site.clone(), name }).await?;
    let link: ShareLink = serde_json::from_value(answer)?;
    println!("{}", full_url(base_url, &link.url));
    eprintln!(
        "created share link `{}`: anyone who has it sees {site}'s dashboard, read-only; revoke \
         it with `footfall share revoke {site} {}`",
        link.name, link.id
    );
    Ok(())
}

pub async fn list(
    settings: &Settings,
    site: String,
    base_url: Option<&str>,
    json: bool,
) -> Result<()> {
    let answer = request(settings, Request::ShareList { site: site.clone() }).await?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let links: Vec<ShareLink> = serde_json::from_value(answer)?;
    if links.is_empty() {
        eprintln!("{site} has no share links; make one with `footfall share create {site}`");
        return Ok(());
    }
    let headers = ["id", "name", "created", "url"].map(String::from);
    let rows: Vec<Vec<Value>> = links
        .into_iter()
        .map(|link| {
            let url = full_url(base_url, &link.url);
            vec![json!(link.id), json!(link.name), json!(day_of(link.created)), json!(url)]
        })
        .collect();
    print!("{}", table::render(&headers, &rows));
    Ok(())
}

pub async fn revoke(settings: &Settings, site: String, id: String) -> Result<()> {
    request(settings, Request::ShareRevoke { site, id }).await?;
    eprintln!("revoked the share link; it has stopped working");
    Ok(())
}

/// A link's path on the server at `base_url`, or the path alone.
fn full_url(base_url: Option<&str>, path: &str) -> String {
    match base_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path.to_owned(),
    }
}
