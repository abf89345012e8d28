//! `footfall user add|list|remove`: who logs in to the dashboard. The password is hashed here,
//! so that it never leaves this process, not even for the server's control socket.

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result, anyhow, bail};
use footfall_server::auth;
use footfall_server::control::{Request, UserInfo};
use serde_json::{Value, json};

use super::{day_of, request};
use crate::config::Settings;
use crate::table;

pub async fn add(settings: &Settings, name: String, password_stdin: bool) -> Result<()> {
    // Before asking for a password that would be refused with the name.
    auth::check_user_name(&name).map_err(|e| anyhow!(e))?;
    let password = if password_stdin { read_stdin()? } else { prompt(&name)? };
    let password_hash = auth::hash_password(&password).map_err(|e| anyhow!(e))?;
    let answer = request(settings, Request::UserAdd { name, password_hash }).await?;
    let UserInfo { name, .. } = serde_json::from_value(answer)?;
    eprintln!("added user `{name}`, who can log in to the dashboard now");
    Ok(())
}

/// The password on stdin, without the newline that ends it.
fn read_stdin() -> Result<String> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("reading the password from stdin")?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    auth::check_password_strength(password).map_err(|e| anyhow!(e))?;
    Ok(password.to_owned())
}

/// The password, typed twice on the terminal without being shown.
fn prompt(name: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "stdin is not a terminal to type the password on: send it on stdin with --password-stdin"
        );
    }
    let password = rpassword::prompt_password(format!("password for {name}: "))
        .context("reading the password")?;
    auth::check_password_strength(&password).map_err(|e| anyhow!(e))?;
    let again =
        rpassword::prompt_password("the same password again: ").context("reading the password")?;
    if password != again {
        bail!("the two passwords differ; run the command again");
    }
    Ok(password)
}

pub async fn list(settings: &Settings, json: bool) -> Result<()> {
    let answer = request(settings, Request::UserList).await?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let users: Vec<UserInfo> = serde_json::from_value(answer)?;
    if users.is_empty() {
        eprintln!("no users yet; add one with `footfall user add NAME`");
        return Ok(());
    }
    let headers = ["name", "created"].map(String::from);
    let rows: Vec<Vec<Value>> =
        users.into_iter().map(|u| vec![json!(u.name), json!(day_of(u.created))]).collect();
    print!("{}", table::render(&headers, &rows));
    Ok(())
}

pub async fn remove(settings: &Settings, name: String) -> Result<()> {
    request(settings, Request::UserRemove { name: name.clone() }).await?;
    eprintln!("removed user `{name}` and ended their login sessions");
    Ok(())
}
