//! The dashboard's account API: logging in and out, the sites, and their share links.
//!
//! - `POST /api/auth/login` `{"username", "password"}` → `{"user", "csrf"}` and the session
//!   cookie; `GET /api/auth/me` → the same, or 401 with `users`: whether any user exists;
//!   `POST /api/auth/logout` ends the session.
//! - `GET /api/sites`: every site for a logged-in user or an API key, the public ones for
//!   anyone else; `POST /api/sites` adds or changes one.
//! - `GET|POST /api/sites/{domain}/shares` and `DELETE /api/sites/{domain}/shares/{id}`: a
//!   site's share links.
//!
//! What changes state needs a logged-in user and the session's CSRF token, or an API key: see
//! [`auth::require_admin`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use footfall_core::site::{Site, normalize_domain};
use footfall_store::{Share, Store};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{self, Action, Caller};
use crate::collect::client_ip;
use crate::control;
use crate::engine::now_ms;
use crate::error::ApiError;
use crate::state::AppState;

/// A share link as the API and the CLI show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLink {
    /// The secret the link carries.
    pub id: String,
    pub name: String,
    /// Unix ms.
    pub created: i64,
    /// The link's path on this server: `/share/DOMAIN?auth=ID`.
    pub url: String,
}

impl ShareLink {
    fn of(share: &Share) -> ShareLink {
        ShareLink {
            id: share.id.clone(),
            name: share.name.clone(),
            created: share.created,
            // Domains and ids need no escaping in a URL.
            url: format!("/share/{}?auth={}", share.site, share.id),
        }
    }
}

/// Creates a share link of `site`; `name` defaults to the link's first characters.
pub async fn create_share(
    store: &dyn Store,
    site: &Site,
    name: Option<&str>,
) -> Result<ShareLink, ApiError> {
    let id = auth::new_share_id();
    // `ffs_` and 8 hex digits: enough to tell links apart.
    let name =
        auth::label(name, "a share link", || id[..12].to_owned()).map_err(ApiError::bad_request)?;
    let share = Share { id, site: site.domain.clone(), name, created: now_ms() };
    store.put_share(&share).await?;
    Ok(ShareLink::of(&share))
}

/// The share links of a site, oldest first.
pub async fn share_links(store: &dyn Store, site: &str) -> Result<Vec<ShareLink>, ApiError> {
    let mut shares = store.shares(site).await?;
    shares.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    Ok(shares.iter().map(ShareLink::of).collect())
}

/// Revokes a share link of `site`: it stops working at once.
pub async fn revoke_share(store: &dyn Store, site: &str, id: &str) -> Result<(), ApiError> {
    if store.remove_share(site, id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "site `{site}` has no share link `{id}`; list its share links to see which it has"
        )))
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/auth/login", post(post_login))
        .route("/api/auth/me", get(get_me))
        .route("/api/auth/logout", post(post_logout))
        .route("/api/sites", get(get_sites).post(post_site))
        .route("/api/sites/{domain}/shares", get(get_shares).post(post_share))
        .route("/api/sites/{domain}/shares/{id}", delete(delete_share))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

async fn post_login(
    State(state): State<Arc<AppState>>,
    request: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let headers = &request.headers;
    auth::check_origin(&state, headers)?;
    let credentials: Credentials = json_body(headers, &body)?;
    let (name, address) = (&credentials.username, client_ip(&request, state.config.trust_proxy));
    if let Some(wait_ms) = state.logins.wait_ms(name, address, now_ms()) {
        tracing::warn!(?address, "a login was refused after too many failures");
        return Err(too_many_failures(wait_ms));
    }
    let store = state.store.as_ref();
    let Some(user) = auth::check_password(store, name, &credentials.password).await? else {
        state.logins.failed(name, address, now_ms());
        tracing::info!("a login failed");
        return Err(ApiError::unauthorized("wrong username or password"));
    };
    state.logins.succeeded(name, address);
    let (token, login) = auth::start_session(store, &user.name).await?;
    tracing::info!(user = %login.user, "logged in");
    let mut response = logged_in(&login.user, &login.csrf);
    let cookie = auth::session_cookie(&state, headers, Some(&token));
    response.headers_mut().insert(SET_COOKIE, cookie);
    Ok(response)
}

/// 429 with `Retry-After`: the same for a user who exists and one who does not.
fn too_many_failures(wait_ms: i64) -> ApiError {
    let seconds = (wait_ms + 999) / 1000;
    let minutes = (seconds + 59) / 60;
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many failed logins for this user or from this address: try again in {minutes} \
             minute{}",
            if minutes == 1 { "" } else { "s" }
        ),
    )
    .retry_after(seconds)
}

/// `{"user", "csrf"}`, which no cache may keep.
fn logged_in(user: &str, csrf: &str) -> Response {
    #[derive(Serialize)]
    struct LoggedIn<'a> {
        user: &'a str,
        csrf: &'a str,
    }
    let mut response = Json(LoggedIn { user, csrf }).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn get_me(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(session) = auth::session(&state, &headers).await? {
        return Ok(logged_in(&session.login.user, &session.login.csrf));
    }
    let users = !state.store.users().await?.is_empty();
    let body = json!({ "error": "not logged in", "users": users });
    Ok((StatusCode::UNAUTHORIZED, Json(body)).into_response())
}

async fn post_logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(session) = auth::session(&state, &headers).await? else {
        return Err(ApiError::unauthorized("not logged in: there is no session to end"));
    };
    auth::check_csrf(&headers, &session.login)?;
    state.store.remove_login(session.hash).await?;
    tracing::info!(user = %session.login.user, "logged out");
    let cookie = auth::session_cookie(&state, &headers, None);
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, cookie)]).into_response())
}

async fn get_sites(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = auth::caller(&state, &headers).await?;
    let all = !matches!(caller, Caller::Anonymous);
    let sites: Vec<Site> = state.all_sites().into_iter().filter(|s| all || s.public).collect();
    Ok(Json(json!({ "sites": sites, "user": caller.user() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSite {
    domain: String,
    timezone: Option<String>,
    public: Option<bool>,
}

async fn post_site(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &headers, Action::Change).await?;
    let NewSite { domain, timezone, public } = json_body(&headers, &body)?;
    let added =
        control::add_site(state.store.as_ref(), Some(&state), &domain, timezone, public).await?;
    Ok((StatusCode::CREATED, Json(added.site)).into_response())
}

async fn get_shares(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(domain): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    auth::require_admin(&state, &headers, Action::Read).await?;
    let site = known_site(&state, &domain)?;
    let shares = share_links(state.store.as_ref(), &site.domain).await?;
    Ok(Json(json!({ "shares": shares })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewShare {
    name: Option<String>,
}

async fn post_share(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &headers, Action::Change).await?;
    let site = known_site(&state, &domain)?;
    let NewShare { name } =
        if body.is_empty() { NewShare::default() } else { json_body(&headers, &body)? };
    let link = create_share(state.store.as_ref(), &site, name.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(link)).into_response())
}

async fn delete_share(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((domain, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    auth::require_admin(&state, &headers, Action::Change).await?;
    let site = known_site(&state, &domain)?;
    revoke_share(state.store.as_ref(), &site.domain, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The registered site `domain` names; asked only after the caller has proved they may know.
fn known_site(state: &AppState, domain: &str) -> Result<Site, ApiError> {
    normalize_domain(domain).ok().and_then(|d| state.site(&d)).ok_or_else(|| {
        ApiError::not_found(format!(
            "unknown site `{domain}`: no site with that domain is registered; add it first"
        ))
    })
}

/// A JSON request body, which must say that it is JSON.
fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not the JSON expected: {e}")))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
    use footfall_store::{ApiKey, EmbeddedStore, User};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::serve::{load_state, router};
    use crate::state::ServerConfig;

    const PASSWORD: &str = "correct horse";
    const KEY: &str = "ff_0123456789012345678901234567890123456789";

    /// The whole router over a fresh store with an admin, an API key, two private sites and a
    /// public one.
    struct Api {
        app: Router,
        state: Arc<AppState>,
        _dir: tempfile::TempDir,
    }

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: Value,
    }

    impl Api {
        async fn new(config: ServerConfig) -> Api {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
            let sites = [
                Site::new("a.example", "UTC", false).unwrap(),
                Site::new("b.example", "UTC", false).unwrap(),
                Site::new("open.example", "Europe/Berlin", true).unwrap(),
            ];
            let state = load_state(store, config, &sites).await.unwrap();
            let key = ApiKey { name: "ci".into(), created: 0 };
            state.store.put_api_key(auth::hash_key(KEY), &key).await.unwrap();
            Api { app: router(state.clone()), state, _dir: dir }
        }

        async fn add_admin(&self) {
            let password_hash = auth::hash_password(PASSWORD).unwrap();
            let admin = User { name: "admin".into(), password_hash, created: 0 };
            assert!(self.state.store.add_user(&admin).await.unwrap());
        }

        async fn call(
            &self,
            method: &str,
            uri: &str,
            headers: &[(&str, &str)],
            body: &str,
        ) -> Answer {
            let mut request =
                Request::builder().method(method).uri(uri).header(HOST, "dash.example");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let request = request.body(Body::from(body.to_owned())).unwrap();
            let response = self.app.clone().oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            Answer { status: parts.status, headers: parts.headers, body }
        }

        async fn login(&self, username: &str, password: &str) -> Answer {
            let body = json!({ "username": username, "password": password }).to_string();
            self.call("POST", "/api/auth/login", &[("content-type", "application/json")], &body)
                .await
        }

        /// Logs the admin in: the `Cookie` header to send, and the CSRF token.
        async fn session(&self) -> (String, String) {
            let answer = self.login("admin", PASSWORD).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            let set = answer.headers[SET_COOKIE].to_str().unwrap();
            let cookie = set.split(';').next().unwrap().to_owned();
            (cookie, answer.body["csrf"].as_str().unwrap().to_owned())
        }
    }

    fn error(answer: &Answer) -> &str {
        answer.body["error"].as_str().unwrap_or_else(|| panic!("no error in {}", answer.body))
    }

    #[tokio::test]
    async fn password_guessing_is_held_up_and_the_right_password_waits_too() {
        let api = Api::new(ServerConfig::default()).await;
        api.add_admin().await;
        for guess in 0..crate::throttle::MAX_FAILURES {
            let answer = api.login("admin", &format!("guess {guess}")).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {guess}");
        }
        // Now not even the right password is checked, and a user who does not exist is
        // answered the same way once guessed at as often.
        let answer = api.login("admin", PASSWORD).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.body);
        assert_eq!(
            error(&answer),
            "too many failed logins for this user or from this address: try again in 15 minutes"
        );
        let retry: i64 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((899..=900).contains(&retry), "{retry}");
        assert!(!answer.headers.contains_key(SET_COOKIE));
        for guess in 0..crate::throttle::MAX_FAILURES {
            api.login("nobody", &format!("guess {guess}")).await;
        }
        let nobody = api.login("nobody", PASSWORD).await;
        assert_eq!((nobody.status, nobody.body), (answer.status, answer.body));
    }

    #[tokio::test]
    async fn a_login_sets_the_cookie_that_me_and_logout_use() {
        let api = Api::new(ServerConfig::default()).await;
        let me = api.call("GET", "/api/auth/me", &[], "").await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me.body, json!({ "error": "not logged in", "users": false }));
        api.add_admin().await;
        let me = api.call("GET", "/api/auth/me", &[], "").await;
        assert_eq!(me.body, json!({ "error": "not logged in", "users": true }));

        // A wrong password and an unknown user get the same answer.
        for (user, password) in [("admin", "wrong horse"), ("nobody", PASSWORD)] {
            let answer = api.login(user, password).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{user}");
            assert_eq!(answer.body, json!({ "error": "wrong username or password" }));
            assert!(!answer.headers.contains_key(SET_COOKIE));
        }
        let body = json!({ "username": "admin", "password": PASSWORD }).to_string();
        let form =
            api.call("POST", "/api/auth/login", &[("content-type", "text/plain")], &body).await;
        assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(error(&form).contains("Content-Type: application/json"), "{}", form.body);
        let json = ("content-type", "application/json");
        let elsewhere = [json, (ORIGIN.as_str(), "https://evil.example")];
        let answer = api.call("POST", "/api/auth/login", &elsewhere, &body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
        let here = [json, (ORIGIN.as_str(), "http://dash.example")];
        assert_eq!(api.call("POST", "/api/auth/login", &here, &body).await.status, StatusCode::OK);

        let answer = api.login("admin", PASSWORD).await;
        assert_eq!(answer.status, StatusCode::OK);
        let csrf = answer.body["csrf"].as_str().unwrap();
        assert_eq!(answer.body, json!({ "user": "admin", "csrf": csrf }));
        assert_eq!(csrf.len(), 32);
        let set = answer.headers[SET_COOKIE].to_str().unwrap();
        let token = set.strip_prefix("ff_session=").unwrap().split(';').next().unwrap();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        assert_eq!(
            set,
            format!("ff_session={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=2592000")
        );
        let cookie = format!("theme=dark; ff_session={token}");

        let me = api.call("GET", "/api/auth/me", &[(COOKIE.as_str(), &cookie)], "").await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.body, json!({ "user": "admin", "csrf": csrf }));
        assert_eq!(me.headers[CACHE_CONTROL], "no-store");

        // Logging out needs the session's CSRF token, not another's.
        let other_csrf = api.session().await.1;
        for csrf_header in [vec![], vec![(auth::CSRF_HEADER, other_csrf.as_str())]] {
            let headers = [vec![(COOKIE.as_str(), cookie.as_str())], csrf_header].concat();
            let answer = api.call("POST", "/api/auth/logout", &headers, "").await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN);
            assert!(error(&answer).starts_with("missing or wrong CSRF token: "), "{}", answer.body);
        }
        let headers = [(COOKIE.as_str(), cookie.as_str()), (auth::CSRF_HEADER, csrf)];
        let answer = api.call("POST", "/api/auth/logout", &headers, "").await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        let cleared = "ff_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0";
        assert_eq!(answer.headers[SET_COOKIE], cleared);
        let me = api.call("GET", "/api/auth/me", &[(COOKIE.as_str(), &cookie)], "").await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "the session is gone from the store");
        let again = api.call("POST", "/api/auth/logout", &headers, "").await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn the_cookie_is_secure_when_a_trusted_proxy_says_https() {
        for (trust_proxy, secure) in [(true, true), (false, false)] {
            let api = Api::new(ServerConfig { trust_proxy, ..ServerConfig::default() }).await;
            api.add_admin().await;
            let body = json!({ "username": "admin", "password": PASSWORD }).to_string();
            let headers = [
                ("content-type", "application/json"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "dash.example"),
                (ORIGIN.as_str(), "https://dash.example"),
            ];
            let answer = api.call("POST", "/api/auth/login", &headers, &body).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            let set = answer.headers[SET_COOKIE].to_str().unwrap();
            assert_eq!(set.ends_with("; Max-Age=2592000; Secure"), secure, "{set}");
        }
    }

    fn domains(answer: &Answer) -> Vec<&str> {
        let sites = answer.body["sites"].as_array().unwrap();
        sites.iter().map(|s| s["domain"].as_str().unwrap()).collect()
    }

    #[tokio::test]
    async fn sites_are_listed_for_who_asks_and_added_by_admins_with_csrf() {
        let api = Api::new(ServerConfig::default()).await;
        api.add_admin().await;
        let anonymous = api.call("GET", "/api/sites", &[], "").await;
        assert_eq!(anonymous.status, StatusCode::OK);
        let open = json!({ "domain": "open.example", "timezone": "Europe/Berlin", "public": true });
        assert_eq!(anonymous.body, json!({ "sites": [open], "user": null }));
        // A cookie of no session is no one's.
        let stale = [(COOKIE.as_str(), "ff_session=00ff")];
        assert_eq!(api.call("GET", "/api/sites", &stale, "").await.body, anonymous.body);

        let (cookie, csrf) = api.session().await;
        let user = api.call("GET", "/api/sites", &[(COOKIE.as_str(), &cookie)], "").await;
        assert_eq!(domains(&user), ["a.example", "b.example", "open.example"]);
        assert_eq!(user.body["user"], "admin");
        let bearer = format!("Bearer {KEY}");
        let key = api.call("GET", "/api/sites", &[(AUTHORIZATION.as_str(), &bearer)], "").await;
        assert_eq!(domains(&key), ["a.example", "b.example", "open.example"]);
        assert_eq!(key.body["user"], Value::Null);

        let json = ("content-type", "application/json");
        let body = r#"{"domain": "https://www.New.example/", "timezone": "Asia/Tokyo"}"#;
        let no_csrf = [json, (COOKIE.as_str(), &cookie)];
        let answer = api.call("POST", "/api/sites", &no_csrf, body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert!(api.state.site("new.example").is_none());
        let anonymous = api.call("POST", "/api/sites", &[json], body).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{}", anonymous.body);

        let admin = [json, (COOKIE.as_str(), &cookie), (auth::CSRF_HEADER, &csrf)];
        let answer = api.call("POST", "/api/sites", &admin, body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let added = json!({ "domain": "new.example", "timezone": "Asia/Tokyo", "public": false });
        assert_eq!(answer.body, added);
        assert_eq!(api.state.site("new.example").unwrap().timezone, "Asia/Tokyo");

        // An API key needs no CSRF token: browsers do not send it on their own.
        let with_key = [json, (AUTHORIZATION.as_str(), &bearer)];
        let body = r#"{"domain": "new.example", "public": true}"#;
        let answer = api.call("POST", "/api/sites", &with_key, body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(answer.body["timezone"], "Asia/Tokyo", "what is not given is kept");
        assert_eq!(answer.body["public"], true);

        for (body, named) in [
            (r#"{"domain": "not a domain"}"#, "`not a domain`"),
            (r#"{"domain": "c.example", "timezone": "Mars/Olympus"}"#, "Mars/Olympus"),
            (r#"{"domain": "c.example", "timeZone": "UTC"}"#, "timeZone"),
        ] {
            let answer = api.call("POST", "/api/sites", &admin, body).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(error(&answer).contains(named), "{}", answer.body);
        }
    }

    #[tokio::test]
    async fn share_links_read_their_own_site_until_revoked() {
        let api = Api::new(ServerConfig::default()).await;
        api.add_admin().await;
        let (cookie, csrf) = api.session().await;
        let admin = [(COOKIE.as_str(), cookie.as_str()), (auth::CSRF_HEADER, csrf.as_str())];
        let shares = "/api/sites/a.example/shares";

        let answer = api.call("POST", shares, &admin[..1], "").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "a cookie alone makes no link");
        let json = ("content-type", "application/json");
        let named = [&admin[..], &[json]].concat();
        let answer = api.call("POST", shares, &named, r#"{"name": "board"}"#).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let id = answer.body["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("ffs_") && id.len() == 36, "{id}");
        let created = answer.body["created"].as_i64().unwrap();
        let url = format!("/share/a.example?auth={id}");
        let link = json!({ "id": id, "name": "board", "created": created, "url": url });
        assert_eq!(answer.body, link);
        let unnamed = api.call("POST", shares, &admin, "").await;
        assert_eq!(unnamed.status, StatusCode::CREATED);
        assert_eq!(unnamed.body["name"].as_str(), unnamed.body["id"].as_str().map(|id| &id[..12]));

        let listed = api.call("GET", shares, &admin[..1], "").await;
        assert_eq!(listed.status, StatusCode::OK);
        // Oldest first; links made in the same millisecond go by id.
        let mut both = [link.clone(), unnamed.body.clone()];
        both.sort_by_key(|l| (l["created"].as_i64(), l["id"].as_str().map(String::from)));
        assert_eq!(listed.body, json!({ "shares": both }));

        // A link reads its site, not another private one; a public site needs nothing.
        let (a, b) = (api.state.site("a.example").unwrap(), api.state.site("b.example").unwrap());
        let open = api.state.site("open.example").unwrap();
        let none = HeaderMap::new();
        assert!(auth::can_read(&api.state, &none, Some(&id), &a).await.is_ok());
        let err = auth::can_read(&api.state, &none, Some(&id), &b).await.unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN, "{}", err.message);
        let err = auth::can_read(&api.state, &none, None, &a).await.unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED, "{}", err.message);
        assert!(auth::can_read(&api.state, &none, None, &open).await.is_ok());

        // Someone with the link alone can neither list, make nor revoke links.
        let revoke = format!("{shares}/{id}");
        let with_link = format!("{shares}?auth={id}");
        for (method, uri) in [("GET", &with_link), ("POST", &with_link), ("DELETE", &revoke)] {
            let answer = api.call(method, uri, &[json], "").await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        }
        let answer = api.call("DELETE", &revoke, &admin[..1], "").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "revoking needs the CSRF token");
        let elsewhere = format!("/api/sites/b.example/shares/{id}");
        let answer = api.call("DELETE", &elsewhere, &admin, "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "not b.example's link");
        assert!(auth::can_read(&api.state, &none, Some(&id), &a).await.is_ok());

        let answer = api.call("DELETE", &revoke, &admin, "").await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        let err = auth::can_read(&api.state, &none, Some(&id), &a).await.unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED, "{}", err.message);
        assert!(err.message.contains("revoked"), "{}", err.message);
        // A logged-in user still reads it, a revoked link in the query or not.
        let user = HeaderMap::from_iter([(COOKIE, cookie.parse().unwrap())]);
        assert!(auth::can_read(&api.state, &user, Some(&id), &a).await.is_ok());
        let answer = api.call("DELETE", &revoke, &admin, "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);

        let unknown = api.call("GET", "/api/sites/nope.example/shares", &admin[..1], "").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert!(error(&unknown).contains("unknown site `nope.example`"), "{}", unknown.body);
    }
}
