//! The control socket: how `footfall site`, `key`, `query`, `user` and `share` reach a running
//! server, whose embedded store holds the data directory's lock. One JSON request per line, one
//! JSON response per line, over a Unix socket in the data directory; who may connect is decided
//! by the directory's permissions and the socket's mode (0600).
//!
//! [`execute`] is the one implementation of every command: the server runs it on its own state,
//! and the CLI on a store it opened itself when no server is running.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use footfall_core::pipeline::DEFAULT_SESSION_TIMEOUT_MS;
use footfall_core::query::{StatsKind, StatsQuery};
use footfall_core::site::{Site, normalize_domain};
use footfall_store::{ApiKey, Store, StoreError, User};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::engine::now_ms;
use crate::error::ApiError;
use crate::segments::{self, Segments};
use crate::state::AppState;
use crate::{account, auth, stats};

/// Longest request line the server reads; real requests are a few hundred bytes.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// Adds a site, or changes the one with the same domain. What is not given keeps its
    /// current value (for a new site: UTC, not public).
    SiteAdd {
        domain: String,
        timezone: Option<String>,
        public: Option<bool>,
    },
    SiteList,
    /// Creates an API key; `name` defaults to the key's first characters.
    KeyCreate {
        name: Option<String>,
    },
    /// A stats query with the HTTP API's parameters (`period`, `metrics`, …); `site` is its
    /// `site_id`.
    Query {
        kind: QueryKind,
        site: String,
        params: HashMap<String, String>,
    },
    /// Adds a dashboard user. The CLI hashes the password ([`auth::hash_password`]), so that
    /// the password itself never crosses the socket.
    UserAdd {
        name: String,
        password_hash: String,
    },
    UserList,
    /// Removes a user and ends their login sessions.
    UserRemove {
        name: String,
    },
    /// Creates a share link of a site; `name` defaults to the link's first characters.
    ShareCreate {
        site: String,
        name: Option<String>,
    },
    ShareList {
        site: String,
    },
    /// Revokes a share link of a site: it stops working at once.
    ShareRevoke {
        site: String,
        id: String,
    },
}

/// The stats endpoint a [`Request::Query`] asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    Aggregate,
    Timeseries,
    Breakdown,
    /// `/realtime/visitors`.
    Realtime,
}

impl From<QueryKind> for StatsKind {
    fn from(kind: QueryKind) -> StatsKind {
        match kind {
            QueryKind::Aggregate => StatsKind::Aggregate,
            QueryKind::Timeseries => StatsKind::Timeseries,
            QueryKind::Breakdown => StatsKind::Breakdown,
            QueryKind::Realtime => StatsKind::RealtimeVisitors,
        }
    }
}

/// The answer to [`Request::SiteAdd`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteAdded {
    pub site: Site,
    /// A site with this domain existed and was replaced.
    pub replaced: bool,
}

/// The answer to [`Request::KeyCreate`]: the key itself, which is not stored and so cannot be
/// shown again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCreated {
    pub key: String,
    pub name: String,
}

/// A user as [`Request::UserAdd`] and [`Request::UserList`] answer: not their password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    /// Unix ms.
    pub created: i64,
}

/// `{"ok": …}` or `{"error": "…"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(Value),
    Error(String),
}

/// Runs a request. With `state`, sites are added through it, so that the running collector and
/// pipeline know them at once; without, the store alone is written.
///
/// Answers: [`SiteAdded`], the sites ordered by domain, [`KeyCreated`], the HTTP API's body,
/// [`UserInfo`], the users ordered by name, [`account::ShareLink`], a site's share links, and
/// `null` for a removed user or a revoked link.
pub async fn execute(
    store: &dyn Store,
    state: Option<&AppState>,
    req: Request,
) -> Result<Value, String> {
    match req {
        Request::SiteAdd { domain, timezone, public } => {
            let added = add_site(store, state, &domain, timezone, public).await;
            added.map(|added| json!(added)).map_err(|e| e.message)
        }
        Request::SiteList => {
            let mut sites = store.sites().await.map_err(|e| e.to_string())?;
            sites.sort_by(|a, b| a.domain.cmp(&b.domain));
            Ok(json!(sites))
        }
        Request::KeyCreate { name } => {
            let key = auth::new_key();
            // `ff_` and 8 hex digits: enough to tell keys apart, far too little to use.
            let name = auth::label(name.as_deref(), "a key", || key[..11].to_owned())?;
            let record = ApiKey { name: name.clone(), created: now_ms() };
            store.put_api_key(auth::hash_key(&key), &record).await.map_err(|e| e.to_string())?;
            Ok(json!(KeyCreated { key, name }))
        }
        Request::Query { kind, site, mut params } => {
            let found = known_site(store, &site).await?;
            params.insert("site_id".into(), found.domain.clone());
            let query = StatsQuery::parse(kind.into(), &params).map_err(|e| e.to_string())?;
            let _between_batches = match state {
                Some(state) => Some(state.rollups.read().await),
                None => None,
            };
            // Without a server, a filtered query builds the segments it reads for itself.
            let own;
            let segments = match state {
                Some(state) => &state.segments,
                None => {
                    own = Segments::new(DEFAULT_SESSION_TIMEOUT_MS, segments::DEFAULT_BUDGET_BYTES);
                    &own
                }
            };
            stats::run(store, segments, &found, &query, now_ms()).await.map_err(|e| e.message)
        }
        Request::UserAdd { name, password_hash } => {
            auth::check_user_name(&name)?;
            if !auth::is_password_hash(&password_hash) {
                return Err("the password hash is not an argon2id PHC string; let `footfall \
                            user add` make it"
                    .into());
            }
            let user = User { name, password_hash, created: now_ms() };
            if !store.add_user(&user).await.map_err(|e| e.to_string())? {
                return Err(format!(
                    "there is a user `{0}` already; to give it a new password, remove it with \
                     `footfall user remove {0}` and add it again",
                    user.name
                ));
            }
            Ok(json!(UserInfo { name: user.name, created: user.created }))
        }
        Request::UserList => {
            let users = store.users().await.map_err(|e| e.to_string())?;
            let mut users: Vec<UserInfo> =
                users.into_iter().map(|u| UserInfo { name: u.name, created: u.created }).collect();
            users.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(json!(users))
        }
        Request::UserRemove { name } => {
            if !store.remove_user(&name).await.map_err(|e| e.to_string())? {
                return Err(format!(
                    "there is no user `{name}`; `footfall user list` shows who there is"
                ));
            }
            Ok(Value::Null)
        }
        Request::ShareCreate { site, name } => {
            let site = known_site(store, &site).await?;
            let link = account::create_share(store, &site, name.as_deref()).await;
            link.map(|link| json!(link)).map_err(|e| e.message)
        }
        Request::ShareList { site } => {
            let site = known_site(store, &site).await?;
            let links = account::share_links(store, &site.domain).await;
            links.map(|links| json!(links)).map_err(|e| e.message)
        }
        Request::ShareRevoke { site, id } => {
            let site = known_site(store, &site).await?;
            let revoked = account::revoke_share(store, &site.domain, &id).await;
            revoked.map(|()| Value::Null).map_err(|e| e.message)
        }
    }
}

/// Adds a site, or changes the one with the same domain; what is not given keeps its current
/// value (for a new site: UTC, not public). With `state`, through it, so that the running
/// collector and pipeline know the site at once.
pub async fn add_site(
    store: &dyn Store,
    state: Option<&AppState>,
    domain: &str,
    timezone: Option<String>,
    public: Option<bool>,
) -> Result<SiteAdded, ApiError> {
    let domain = normalize_domain(domain).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let existing = find_site(store, &domain).await?;
    let replaced = existing.is_some();
    let (old_timezone, old_public) =
        existing.map_or(("UTC".to_owned(), false), |s| (s.timezone, s.public));
    let site = Site::new(&domain, &timezone.unwrap_or(old_timezone), public.unwrap_or(old_public))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    match state {
        Some(state) => state.put_site(site.clone()).await,
        None => store.put_site(&site).await,
    }?;
    Ok(SiteAdded { site, replaced })
}

/// Looked up in the store rather than in a server's memory, so that both callers of
/// [`execute`] read the same thing; a server writes sites to its store first.
async fn find_site(store: &dyn Store, domain: &str) -> Result<Option<Site>, StoreError> {
    let sites = store.sites().await?;
    Ok(sites.into_iter().find(|s| s.domain == domain))
}

/// The registered site `site` names, or an error that says how to add it.
async fn known_site(store: &dyn Store, site: &str) -> Result<Site, String> {
    let domain = normalize_domain(site).map_err(|e| e.to_string())?;
    match find_site(store, &domain).await.map_err(|e| e.to_string())? {
        Some(found) => Ok(found),
        None => Err(format!(
            "unknown site `{site}`: no site with that domain is registered; add it with \
             `footfall site add {domain}`"
        )),
    }
}

/// Answers requests on a Unix socket at `path` until `stop` turns true, then removes the socket.
/// Failures are logged: the server keeps collecting without its control socket.
pub async fn listen(path: &Path, state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    // The data directory's lock makes this process its only server, so a socket file already
    // here was left by one that crashed.
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale control socket"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e,
                "cannot replace the control socket; CLI commands will not reach this server");
            return;
        }
    }
    let listener = match UnixListener::bind(path) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e,
                "cannot create the control socket (a shorter data directory path may help); CLI \
                 commands will not reach this server");
            return;
        }
    };
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::error!(path = %path.display(), error = %e,
            "cannot restrict the control socket to its owner; closing it");
        let _ = std::fs::remove_file(path);
        return;
    }
    tracing::info!(path = %path.display(), "control socket ready");

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, state.clone()));
                }
                Err(e) => {
                    // Such as running out of file descriptors: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a control connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    let _ = std::fs::remove_file(path);
}

/// Answers one connection's requests, one line each, until it closes.
async fn answer(stream: UnixStream, state: Arc<AppState>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        let response = match (&mut reader).take(MAX_REQUEST_BYTES).read_line(&mut line).await {
            Ok(0) => return,
            Err(e) => {
                tracing::debug!(error = %e, "reading a control request failed");
                return;
            }
            Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_REQUEST_BYTES => {
                Response::Error(format!("request longer than {MAX_REQUEST_BYTES} bytes"))
            }
            Ok(_) => match serde_json::from_str::<Request>(&line) {
                Ok(req) => match execute(state.store.as_ref(), Some(&state), req).await {
                    Ok(value) => Response::Ok(value),
                    Err(message) => Response::Error(message),
                },
                Err(e) => Response::Error(format!("not a control request: {e}")),
            },
        };
        let mut out = serde_json::to_vec(&response).expect("a response serializes");
        out.push(b'\n');
        if let Err(e) = write.write_all(&out).await {
            tracing::debug!(error = %e, "answering a control request failed");
            return;
        }
    }
}

/// Why [`call`] got no answer.
#[derive(Debug)]
pub enum ControlError {
    /// Nothing accepts connections on the socket: no server, or one still starting.
    Unreachable { path: PathBuf, source: io::Error },
    /// The connection broke, or the server answered something that is not a response.
    Broken { path: PathBuf, message: String },
    /// The server ran the request, and it failed; the message is for the user.
    Failed(String),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Unreachable { path, source } => {
                write!(f, "no footfall server answers on {}: {source}", path.display())
            }
            ControlError::Broken { path, message } => {
                write!(f, "the control socket {} failed: {message}", path.display())
            }
            ControlError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControlError::Unreachable { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Sends one request to the server listening at `path` and returns its answer.
pub async fn call(path: &Path, req: &Request) -> Result<Value, ControlError> {
    let broken = |message: String| ControlError::Broken { path: path.to_owned(), message };
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| ControlError::Unreachable { path: path.to_owned(), source })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(req).expect("a request serializes");
    line.push(b'\n');
    write.write_all(&line).await.map_err(|e| broken(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await.map_err(|e| broken(e.to_string()))?;
    if answer.is_empty() {
        return Err(broken("the server closed the connection without answering".into()));
    }
    match serde_json::from_str(&answer) {
        Ok(Response::Ok(value)) => Ok(value),
        Ok(Response::Error(message)) => Err(ControlError::Failed(message)),
        Err(e) => Err(broken(format!("unreadable answer: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use footfall_store::EmbeddedStore;

    use super::*;
    use crate::serve::load_state;
    use crate::state::ServerConfig;

    #[tokio::test]
    async fn the_socket_answers_requests_and_refuses_what_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("data")).unwrap());
        let state = load_state(store, ServerConfig::default(), &[]).await.unwrap();
        let path = dir.path().join("footfall.sock");
        std::fs::write(&path, "left by a crashed server").unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let listener = tokio::spawn({
            let (path, state) = (path.clone(), state.clone());
            async move { listen(&path, state, stop).await }
        });
        for _ in 0..500 {
            if call(&path, &Request::SiteList).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let add = Request::SiteAdd {
            domain: "https://www.Example.com/".into(),
            timezone: Some("Europe/Berlin".into()),
            public: None,
        };
        let added: SiteAdded = serde_json::from_value(call(&path, &add).await.unwrap()).unwrap();
        assert_eq!(added.site.domain, "example.com");
        assert!(!added.replaced);
        // The running server's own view, which the collector reads, has it at once.
        assert_eq!(state.site("example.com"), Some(added.site));

        // Making it public keeps its timezone.
        let public =
            Request::SiteAdd { domain: "example.com".into(), timezone: None, public: Some(true) };
        let changed: SiteAdded =
            serde_json::from_value(call(&path, &public).await.unwrap()).unwrap();
        assert!(changed.replaced);
        assert_eq!((changed.site.timezone.as_str(), changed.site.public), ("Europe/Berlin", true));

        let bad = Request::SiteAdd {
            domain: "example.org".into(),
            timezone: Some("Mars/Olympus".into()),
            public: None,
        };
        match call(&path, &bad).await {
            Err(ControlError::Failed(message)) => assert!(message.contains("Mars/Olympus")),
            other => panic!("{other:?}"),
        }

        let mut raw = UnixStream::connect(&path).await.unwrap();
        raw.write_all(b"{\"command\":\"launch\"}\n").await.unwrap();
        let mut answer = String::new();
        BufReader::new(&mut raw).read_line(&mut answer).await.unwrap();
        match serde_json::from_str(&answer).unwrap() {
            Response::Error(message) => assert!(message.starts_with("not a control request")),
            other => panic!("{other:?}"),
        }

        stop_tx.send(true).unwrap();
        listener.await.unwrap();
        assert!(!path.exists(), "the socket file is removed on stop");
    }

    #[tokio::test]
    async fn without_a_server_the_store_is_used_directly() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let created = execute(&store, None, Request::KeyCreate { name: None }).await.unwrap();
        let created: KeyCreated = serde_json::from_value(created).unwrap();
        assert_eq!(created.name, created.key[..11]);
        let stored = store.api_key(auth::hash_key(&created.key)).await.unwrap();
        assert_eq!(stored.map(|k| k.name), Some(created.name));

        let query = Request::Query {
            kind: QueryKind::Aggregate,
            site: "example.com".into(),
            params: HashMap::new(),
        };
        let err = execute(&store, None, query).await.unwrap_err();
        assert!(err.contains("unknown site `example.com`"), "{err}");
    }

    #[tokio::test]
    async fn users_and_share_links_are_managed_without_their_secrets_going_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let run = |req| execute(&store, None, req);
        let password_hash = auth::hash_password("correct horse").unwrap();
        let add = |name: &str, password_hash: &str| Request::UserAdd {
            name: name.into(),
            password_hash: password_hash.into(),
        };
        let added: UserInfo =
            serde_json::from_value(run(add("admin", &password_hash)).await.unwrap()).unwrap();
        assert_eq!(added.name, "admin");
        let err = run(add("admin", &password_hash)).await.unwrap_err();
        assert!(err.contains("there is a user `admin` already"), "{err}");
        let err = run(add("ann", "correct horse")).await.unwrap_err();
        assert!(err.contains("not an argon2id PHC string"), "{err}");
        let err = run(add("with space", &password_hash)).await.unwrap_err();
        assert!(err.contains("is not a user name"), "{err}");
        run(add("ann@example.com", &password_hash)).await.unwrap();
        let listed = run(Request::UserList).await.unwrap();
        let names: Vec<&str> =
            listed.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["admin", "ann@example.com"]);
        assert!(!listed.to_string().contains("argon2"), "hashes stay in the store: {listed}");
        assert_eq!(run(Request::UserRemove { name: "admin".into() }).await, Ok(Value::Null));
        let err = run(Request::UserRemove { name: "admin".into() }).await.unwrap_err();
        assert!(err.contains("there is no user `admin`"), "{err}");

        let create = |site: &str, name: Option<&str>| Request::ShareCreate {
            site: site.into(),
            name: name.map(Into::into),
        };
        let err = run(create("a.example", None)).await.unwrap_err();
        assert!(err.contains("unknown site `a.example`"), "{err}");
        store.put_site(&Site::new("a.example", "UTC", false).unwrap()).await.unwrap();
        let link = run(create("https://a.example/", Some("board"))).await.unwrap();
        let link: account::ShareLink = serde_json::from_value(link).unwrap();
        assert_eq!(link.url, format!("/share/a.example?auth={}", link.id));
        assert_eq!(link.name, "board");
        let err = run(create("a.example", Some(""))).await.unwrap_err();
        assert!(err.contains("a share link's name must not be empty"), "{err}");
        let list = Request::ShareList { site: "a.example".into() };
        assert_eq!(run(list.clone()).await, Ok(json!([link])));
        let revoke = Request::ShareRevoke { site: "a.example".into(), id: link.id.clone() };
        assert_eq!(run(revoke.clone()).await, Ok(Value::Null));
        assert_eq!(run(list).await, Ok(json!([])));
        let err = run(revoke).await.unwrap_err();
        assert!(err.contains("has no share link"), "{err}");
    }
}
