//! `footfall key create`: the key alone goes to stdout, so that `KEY=$(footfall key create)`
//! works.

use anyhow::Result;
use footfall_server::control::{KeyCreated, Request};

use super::request;
use crate::config::Settings;

pub async fn create(settings: &Settings, name: Option<String>) -> Result<()> {
    let answer = request(settings, Request::KeyCreate { name }).await?;
    let KeyCreated { key, name } = serde_json::from_value(answer)?;
    println!("{key}");
    eprintln!("created API key `{name}`; only its hash is stored, so keep the key now");
    Ok(())
}
