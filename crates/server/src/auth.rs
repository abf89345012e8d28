//! Who may do what.
//!
//! - API keys: `ff_` followed by 40 hex characters of randomness, sent as
//!   `Authorization: Bearer`. Only a blake3 hash of a key is stored, so a leaked store does not
//!   leak working keys.
//! - Dashboard users: a password (argon2id) buys a login session, held in the `ff_session`
//!   cookie and stored, like keys, only as a hash. A state-changing request made with the
//!   cookie must also carry the session's CSRF token in `X-CSRF-Token`: a page of another site
//!   can make the browser send the cookie, but cannot read the token.
//! - Share links: `ffs_` followed by 32 hex characters, sent as `auth=`; each reads one site.
//!
//! Anyone reads a public site's stats.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use footfall_core::site::Site;
use footfall_store::{Login, Store, User};
use rand::RngExt;
use tokio::sync::Semaphore;

use crate::engine::now_ms;
use crate::error::ApiError;
use crate::state::AppState;

/// The cookie that holds a login session's token.
pub const SESSION_COOKIE: &str = "ff_session";

/// The header that carries a login session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a login session lasts.
pub const LOGIN_SECONDS: i64 = 30 * 24 * 60 * 60;

/// The shortest password `footfall user add` takes.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Longest user name.
const MAX_USER_NAME_CHARS: usize = 64;

/// Longest label of a key or a share link.
const MAX_LABEL_CHARS: usize = 100;

/// Each password check holds 19 MiB for tens of milliseconds: a burst of logins must not take
/// the server's memory or every blocking thread.
static CHECKING_PASSWORDS: Semaphore = Semaphore::const_new(4);

/// `bytes` random bytes in hex, after `prefix`.
fn random_token(prefix: &str, bytes: usize) -> String {
    let mut rng = rand::rng();
    let mut token = String::with_capacity(prefix.len() + 2 * bytes);
    token.push_str(prefix);
    for _ in 0..bytes {
        token.push_str(&format!("{:02x}", rng.random::<u8>()));
    }
    token
}

/// A new random API key.
pub fn new_key() -> String {
    random_token("ff_", 20)
}

/// A new random share link id.
pub fn new_share_id() -> String {
    random_token("ffs_", 16)
}

/// The hash under which a key, or a login session's token, is stored.
pub fn hash_key(key: &str) -> [u8; 32] {
    *blake3::hash(key.as_bytes()).as_bytes()
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks that the request carries a valid API key.
pub async fn require_key(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::unauthorized(
            "missing API key: send `Authorization: Bearer <key>` (create one with `footfall key create`)",
        ));
    };
    check_key(state, token).await
}

async fn check_key(state: &AppState, token: &str) -> Result<(), ApiError> {
    match state.store.api_key(hash_key(token)).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::unauthorized(
            "invalid API key: it is not one that `footfall key create` made for this server",
        )),
    }
}

/// A label for people, trimmed; `default` when none is given. `what` names its owner in
/// messages (`a key`).
pub fn label(
    name: Option<&str>,
    what: &str,
    default: impl FnOnce() -> String,
) -> Result<String, String> {
    match name.map(str::trim) {
        None => Ok(default()),
        Some("") => Err(format!("{what}'s name must not be empty; leave it out for a default")),
        Some(n) if n.chars().count() > MAX_LABEL_CHARS => {
            Err(format!("{what}'s name is a label of at most {MAX_LABEL_CHARS} characters"))
        }
        Some(n) => Ok(n.to_owned()),
    }
}

// --- users and passwords -------------------------------------------------------------------

/// Checks a new user's name: short, and plain enough to type and to show anywhere.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if name.is_empty() || name.chars().count() > MAX_USER_NAME_CHARS || !name.chars().all(plain) {
        return Err(format!(
            "`{name}` is not a user name: use 1 to {MAX_USER_NAME_CHARS} letters, digits, `.`, \
             `_`, `@` or `-`"
        ));
    }
    Ok(())
}

/// Checks a new password's length.
pub fn check_password_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
}

/// The password as an argon2id PHC string, with a random salt and argon2's default cost.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `hash` is an argon2id PHC string that [`hash_password`] could have made.
pub fn is_password_hash(hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        parsed.algorithm.as_str() == "argon2id" && argon2::Params::try_from(&parsed).is_ok()
    })
}

/// An argon2id hash of a password no one has, with the default cost, checked when a login
/// names no user: the answer then takes as long as for a wrong password.
const NO_USER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$NruxERcm/NkN/sVCU5rRxA$KMubQeIBr0cRw71Gjp+qPMqVxyQ2WXEk0uU+D0VPBeI";

/// The user with this name and password; `None` for a wrong password and an unknown user
/// alike, after the same work.
pub async fn check_password(
    store: &dyn Store,
    name: &str,
    password: &str,
) -> Result<Option<User>, ApiError> {
    let user = store.user(name).await?;
    let hash = user.as_ref().map_or(NO_USER_HASH, |u| u.password_hash.as_str()).to_owned();
    let password = password.to_owned();
    let _permit = CHECKING_PASSWORDS.acquire().await.map_err(|_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")
    })?;
    let matches = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
    })
    .await
    .map_err(|_| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "checking the password failed")
    })?;
    Ok(user.filter(|_| matches))
}

// --- login sessions ------------------------------------------------------------------------

/// A login session as the request's cookie names it.
pub struct Session {
    pub login: Login,
    /// The hash its token is stored under.
    pub hash: [u8; 32],
}

/// A new login session for `user`, stored; returns its cookie's token and the session.
pub async fn start_session(store: &dyn Store, user: &str) -> Result<(String, Login), ApiError> {
    let token = random_token("", 32);
    let created = now_ms();
    let login = Login {
        user: user.to_owned(),
        csrf: random_token("", 16),
        created,
        expires: created + LOGIN_SECONDS * 1000,
    };
    store.put_login(hash_key(&token), &login).await?;
    Ok((token, login))
}

/// The live login session whose token the request's cookie holds, if any.
pub async fn session(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    let hash = hash_key(token);
    Ok(state.store.login(hash, now_ms()).await?.map(|login| Session { login, hash }))
}

/// The value of a request cookie.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// Checks the request's `X-CSRF-Token` against the session's, in constant time.
pub fn check_csrf(headers: &HeaderMap, login: &Login) -> Result<(), ApiError> {
    let given = headers.get(CSRF_HEADER).map_or(&b""[..], HeaderValue::as_bytes);
    // blake3's hashes compare in constant time, and hide the token's length.
    if !given.is_empty() && blake3::hash(given) == blake3::hash(login.csrf.as_bytes()) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token: send the `csrf` that /api/auth/login or /api/auth/me \
         answered in an X-CSRF-Token header",
    ))
}

/// Whether the request came over https: as told by a proxy in front that is trusted.
fn is_https(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.trust_proxy
        && forwarded(headers, "x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The first value of a proxy's header.
fn forwarded<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(value.split(',').next()?.trim()).filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that starts a session with `token`; `None` ends it.
pub fn session_cookie(state: &AppState, headers: &HeaderMap, token: Option<&str>) -> HeaderValue {
    let max_age = if token.is_some() { LOGIN_SECONDS } else { 0 };
    let secure = if is_https(state, headers) { "; Secure" } else { "" };
    let value = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
        token.unwrap_or("")
    );
    // Tokens are hex.
    HeaderValue::try_from(value).expect("a cookie of ASCII")
}

/// Checks that a request which a browser may have sent from another site's page did not: its
/// `Origin`, when it has one, names this server.
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else { return Ok(()) };
    let host = state
        .config
        .trust_proxy
        .then(|| forwarded(headers, "x-forwarded-host"))
        .flatten()
        .or_else(|| headers.get(HOST)?.to_str().ok());
    let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, host)| host);
    match (origin_host, host) {
        (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this request comes from a page of another site (its Origin is not this server); \
             log in from footfall's own login page",
        )),
    }
}

// --- who asks -------------------------------------------------------------------------------

/// Who made a request.
pub enum Caller {
    /// A holder of an API key.
    Key,
    /// A logged-in user.
    User(Session),
    Anonymous,
}

impl Caller {
    /// The logged-in user's name.
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::User(session) => Some(&session.login.user),
            _ => None,
        }
    }
}

/// Who made the request: an API key (which must be valid if one is sent) before a login
/// session; a cookie whose session has ended counts for nothing.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if let Some(token) = bearer(headers) {
        check_key(state, token).await?;
        return Ok(Caller::Key);
    }
    Ok(session(state, headers).await?.map_or(Caller::Anonymous, Caller::User))
}

/// What a request does, for [`require_admin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    /// Changes state: with a session cookie, the CSRF token is needed too.
    Change,
}

/// Checks that the request comes from an API key holder or a logged-in user, with the CSRF
/// token when it changes something with a session cookie.
pub async fn require_admin(
    state: &AppState,
    headers: &HeaderMap,
    action: Action,
) -> Result<Caller, ApiError> {
    let caller = caller(state, headers).await?;
    match &caller {
        Caller::Key => {}
        Caller::User(session) => {
            if action == Action::Change {
                check_csrf(headers, &session.login)?;
            }
        }
        Caller::Anonymous => {
            return Err(ApiError::unauthorized(
                "not logged in: log in to the dashboard, or send an API key as `Authorization: \
                 Bearer <key>` (create one with `footfall key create`)",
            ));
        }
    }
    Ok(caller)
}

/// Checks that the request may read `site`'s stats: the site is public, or the request
/// carries an API key, a login session, or a share link (`share_token`) of this very site.
pub async fn can_read(
    state: &AppState,
    headers: &HeaderMap,
    share_token: Option<&str>,
    site: &Site,
) -> Result<(), ApiError> {
    if site.public {
        return Ok(());
    }
    if !matches!(caller(state, headers).await?, Caller::Anonymous) {
        return Ok(());
    }
    let Some(token) = share_token else {
        return Err(ApiError::unauthorized(format!(
            "the stats of `{}` are private: log in to the dashboard, open them through a share \
             link, or send an API key as `Authorization: Bearer <key>`",
            site.domain
        )));
    };
    match state.store.share(token).await? {
        Some(share) if share.site == site.domain => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this share link is for another site: a link reads only the site it was made for",
        )),
        None => Err(ApiError::unauthorized(
            "this share link does not work: it was revoked, or never existed; ask for a new one",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hash_stably() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(a.starts_with("ff_") && a.len() == 43, "{a}");
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        let share = new_share_id();
        assert!(share.starts_with("ffs_") && share.len() == 36, "{share}");
        assert!(share[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{share}");
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "bearer ff_abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("ff_abc"));
        h.insert(AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(cookie(&h, SESSION_COOKIE), None);
        h.append(COOKIE, "theme=dark; xff_session=no".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), None);
        h.append(COOKIE, "a=1;ff_session=abc12; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc12"));
    }

    #[test]
    fn passwords_hash_with_argon2id_and_check_only_themselves() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(is_password_hash(&hash));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
        assert!(is_password_hash(NO_USER_HASH));
        for bad in ["", "correct horse", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA"] {
            assert!(!is_password_hash(bad), "{bad}");
        }
        assert!(check_password_strength("12345678").is_ok());
        let err = check_password_strength("1234567").unwrap_err();
        assert!(err.contains("at least 8 characters"), "{err}");
    }

    #[test]
    fn user_names_are_plain() {
        for good in ["admin", "ann@example.com", "a.b_c-d", &"x".repeat(64)] {
            assert_eq!(check_user_name(good), Ok(()), "{good}");
        }
        for bad in ["", "with space", "ünï", "a:b", "{a}", &"x".repeat(65)] {
            let err = check_user_name(bad).unwrap_err();
            assert!(err.contains("is not a user name"), "{err}");
        }
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        let default = || "ffs_1234".to_owned();
        assert_eq!(label(None, "a share link", default).unwrap(), "ffs_1234");
        assert_eq!(label(Some(" team "), "a share link", default).unwrap(), "team");
        let err = label(Some(" "), "a share link", default).unwrap_err();
        assert_eq!(err, "a share link's name must not be empty; leave it out for a default");
        assert!(label(Some(&"x".repeat(101)), "a key", default).unwrap_err().contains("100"));
    }
}
