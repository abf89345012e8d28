//! Static assets built into the binary: the browser tracker at `/js/footfall.js`, and the
//! dashboard (`web/dashboard`): one HTML shell for its pages (`/`, `/login`, `/{domain}`,
//! `/share/{domain}`) and its files under `/dashboard/{version}/…`.
//!
//! Everything is served gzipped to clients that accept it (compressed once, at first request),
//! with an ETag so that browsers revalidate a cached copy with a `304`. The dashboard's files
//! are addressed by a version, a hash of them all, that the shell names: so they are cached for
//! a year, and a new release is fetched at once because its shell names another version. The
//! shell is revalidated on every load and carries a strict Content-Security-Policy: the
//! dashboard shows text that strangers sent (page paths, referrers, event names), and the policy
//! is the second wall, after the dashboard's own rule of never parsing data as HTML.

use std::collections::HashMap;
use std::io::Write;
use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flate2::Compression;
use flate2::write::GzEncoder;
use footfall_core::site::normalize_domain;

use crate::error::ApiError;

/// The tracker's source, as served.
pub const TRACKER_JS: &str = include_str!("../../../web/tracker/footfall.js");

/// The policy of every dashboard page: scripts, styles and requests from this server only, no
/// inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// Where the shell names the dashboard's files; each such reference gets the version inserted.
const FILES_PREFIX: &str = "\"/dashboard/";

/// How long browsers keep each kind of response.
const TRACKER_CACHE: &str = "public, max-age=3600";
const VERSIONED_CACHE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// An asset in both encodings, and its ETag.
struct Asset {
    /// Cloned for each response: a reference count, not a copy.
    plain: Bytes,
    gzipped: Bytes,
    etag: HeaderValue,
    content_type: &'static str,
}

impl Asset {
    fn new(plain: Bytes, content_type: &'static str) -> Asset {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&plain).expect("writing to memory");
        let gzipped = gz.finish().expect("writing to memory");
        let hash = blake3::hash(&plain).to_hex();
        let etag = HeaderValue::try_from(format!("\"{}\"", &hash[..16])).expect("hex is ASCII");
        Asset { plain, gzipped: gzipped.into(), etag, content_type }
    }

    fn respond(&self, request: &HeaderMap, cache_control: &'static str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
        headers.insert(ETAG, self.etag.clone());
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        let fresh = request.get(IF_NONE_MATCH).is_some_and(|tags| {
            tags.to_str().is_ok_and(|t| t.split(',').any(|t| t.trim() == self.etag))
        });
        if fresh {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        let gzip = request
            .get_all(ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|coding| accepts_gzip(coding.trim()));
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            (headers, self.gzipped.clone()).into_response()
        } else {
            (headers, self.plain.clone()).into_response()
        }
    }
}

/// Whether one `Accept-Encoding` entry accepts gzip: `gzip`, or `gzip;q=…` with q above zero.
fn accepts_gzip(coding: &str) -> bool {
    let mut parts = coding.split(';').map(str::trim);
    let name = parts.next().unwrap_or("");
    let refused = parts.any(|p| {
        p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()).is_some_and(|q| q <= 0.0)
    });
    name.eq_ignore_ascii_case("gzip") && !refused
}

static TRACKER: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(Bytes::from_static(TRACKER_JS.as_bytes()), "text/javascript; charset=utf-8")
});

/// The dashboard's sources. A debug build reads them from the source tree when the server
/// starts, so that editing them needs a restart but no rebuild; a release build embeds them.
#[derive(rust_embed::Embed)]
#[folder = "../../web/dashboard/"]
#[exclude = "README.md"]
struct Sources;

/// The dashboard as served.
struct Dashboard {
    /// Names this set of files in their URLs.
    version: String,
    /// By path under `web/dashboard`, the shell excepted.
    files: HashMap<String, Asset>,
    /// `index.html` naming the versioned files.
    shell: Asset,
}

static DASHBOARD: LazyLock<Dashboard> = LazyLock::new(Dashboard::load);

impl Dashboard {
    fn load() -> Dashboard {
        let mut names: Vec<String> = Sources::iter().map(|n| n.into_owned()).collect();
        names.sort();
        let mut hasher = blake3::Hasher::new();
        let mut files = HashMap::new();
        for name in names {
            let data = match Sources::get(&name).expect("a listed file").data {
                std::borrow::Cow::Borrowed(b) => Bytes::from_static(b),
                std::borrow::Cow::Owned(v) => Bytes::from(v),
            };
            // Lengths first, so that no two different sets of files hash alike.
            for part in [name.as_bytes(), &data] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
            files.insert(name.clone(), Asset::new(data, content_type(&name)));
        }
        let version = hasher.finalize().to_hex()[..12].to_owned();
        let index = files.remove("index.html").expect("web/dashboard/index.html exists");
        let html = std::str::from_utf8(&index.plain).expect("index.html is UTF-8");
        let html = html.replace(FILES_PREFIX, &format!("{FILES_PREFIX}{version}/"));
        let shell = Asset::new(html.into(), "text/html; charset=utf-8");
        Dashboard { version, files, shell }
    }

    fn page(&self, request: &HeaderMap) -> Response {
        let mut response = self.shell.respond(request, REVALIDATE);
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
        );
        // A share link's token is in the address: it must not leave with a link followed.
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        response
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        // The licence files.
        _ => "text/plain; charset=utf-8",
    }
}

/// Single path segments that `/{domain}` must not answer: they name other parts of the server.
const NOT_SITES: &[&str] = &["api", "js", "dashboard", "share", "favicon.ico"];

async fn site_page(Path(domain): Path<String>, headers: HeaderMap) -> Response {
    if NOT_SITES.contains(&domain.as_str()) || normalize_domain(&domain).is_err() {
        return ApiError::not_found(format!(
            "no page at /{domain}: a site's dashboard is at /DOMAIN, such as /example.com"
        ))
        .into_response();
    }
    DASHBOARD.page(&headers)
}

async fn dashboard_file(
    Path((version, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let dashboard = &*DASHBOARD;
    let Some(file) = dashboard.files.get(&path) else {
        return ApiError::not_found(format!(
            "no dashboard file `{path}`: reload the page to get this server's dashboard"
        ))
        .into_response();
    };
    // A page from an older release may still ask for its version: it gets today's files, not to
    // be kept, so that the page's next load fetches them under the new version.
    let cache = if version == dashboard.version { VERSIONED_CACHE } else { REVALIDATE };
    file.respond(&headers, cache)
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let tracker = |headers: HeaderMap| async move { TRACKER.respond(&headers, TRACKER_CACHE) };
    let page = |headers: HeaderMap| async move { DASHBOARD.page(&headers) };
    // Fixed paths win over `/{domain}` whichever router declares them, and `/{domain}` matches
    // one segment only, so `/api/…`, `/js/…`, `/healthz`, `/metrics` and `/login` stay theirs.
    Router::new()
        .route("/js/footfall.js", get(tracker))
        .route("/", get(page))
        .route("/login", get(page))
        .route("/{domain}", get(site_page))
        .route("/share/{domain}", get(site_page))
        .route("/dashboard/{version}/{*path}", get(dashboard_file))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use footfall_core::identity::Salts;
    use footfall_store::EmbeddedStore;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::state::{AppState, ServerConfig};

    #[test]
    fn the_tracker_is_at_most_2_kib_gzipped() {
        let size = TRACKER.gzipped.len();
        assert!(size <= 2048, "footfall.js is {size} bytes gzipped; the budget is 2048");
    }

    async fn get(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        routes::<()>().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    async fn body(response: Response) -> Vec<u8> {
        response.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut plain).unwrap();
        plain
    }

    #[tokio::test]
    async fn the_tracker_is_served_gzipped_and_revalidated() {
        let plain = get("/js/footfall.js", &[]).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(plain.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(plain.headers()[CACHE_CONTROL], "public, max-age=3600");
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        let etag = plain.headers()[ETAG].to_str().unwrap().to_owned();
        assert_eq!(body(plain).await, TRACKER_JS.as_bytes());

        let gzipped = get("/js/footfall.js", &[("accept-encoding", "br, gzip")]).await;
        assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(gunzip(&body(gzipped).await), TRACKER_JS.as_bytes());

        let cached = get("/js/footfall.js", &[("if-none-match", &etag)]).await;
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        assert!(body(cached).await.is_empty());
        let stale = get("/js/footfall.js", &[("if-none-match", "\"0000\"")]).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        for (coding, gzip) in [
            ("gzip", true),
            ("GZIP", true),
            ("gzip;q=0.5", true),
            ("gzip; q=0", false),
            ("br", false),
            ("x-gzip2", false),
        ] {
            assert_eq!(accepts_gzip(coding), gzip, "{coding}");
        }
    }

    /// The shell as served, with the versioned paths of the files it names.
    fn shell_text() -> String {
        String::from_utf8(DASHBOARD.shell.plain.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn every_page_is_the_shell_with_its_security_headers() {
        for path in [
            "/",
            "/login",
            "/shop.example",
            "/shop.example:8080?period=7d&filters=a",
            "/share/shop.example?auth=abc",
        ] {
            let response = get(path, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
            assert_eq!(
                headers[CONTENT_SECURITY_POLICY],
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            );
            assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[REFERRER_POLICY], "same-origin");
            assert_eq!(headers[CACHE_CONTROL], "no-cache");
            let html = String::from_utf8(body(response).await).unwrap();
            let main = format!("\"/dashboard/{}/js/main.js\"", DASHBOARD.version);
            assert!(html.contains(&main), "{path} does not name {main}");
        }
        // A request whose path is not a domain, and names that belong to the rest of the server.
        for path in ["/api", "/js", "/dashboard", "/share", "/exa%20mple.com", "/favicon.ico"] {
            assert_eq!(get(path, &[]).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
        assert_eq!(get("/shop.example/more", &[]).await.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn dashboard_files_are_versioned_gzipped_and_revalidated() {
        let v = &DASHBOARD.version;
        let path = format!("/dashboard/{v}/js/main.js");
        let source = std::fs::read("../../web/dashboard/js/main.js").unwrap();
        let plain = get(&path, &[]).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(plain.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(plain.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(plain.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        let etag = plain.headers()[ETAG].to_str().unwrap().to_owned();
        assert_eq!(body(plain).await, source);

        let gzipped = get(&path, &[("accept-encoding", "gzip, deflate")]).await;
        assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(gunzip(&body(gzipped).await), source);
        let cached = get(&path, &[("if-none-match", &etag)]).await;
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

        // Another release's page gets today's file, to be revalidated rather than kept.
        let old = get("/dashboard/0123456789ab/js/main.js", &[]).await;
        assert_eq!(old.status(), StatusCode::OK);
        assert_eq!(old.headers()[CACHE_CONTROL], "no-cache");

        let css = get(&format!("/dashboard/{v}/dashboard.css"), &[]).await;
        assert_eq!(css.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        for missing in ["js/nothing.js", "README.md", "index.html"] {
            let response = get(&format!("/dashboard/{v}/{missing}"), &[]).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }

    /// The file paths a text names after `prefix`, up to the closing quote.
    fn references<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.split(prefix).skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect()
    }

    #[test]
    fn every_file_the_dashboard_names_is_served() {
        let prefix = format!("\"/dashboard/{}/", DASHBOARD.version);
        let shell = shell_text();
        let named = references(&shell, &prefix);
        assert!(named.contains(&"vendor/uPlot.iife.min.js"), "{named:?}");
        for path in named {
            assert!(
                DASHBOARD.files.contains_key(path),
                "index.html names {path}, which is missing"
            );
        }
        // The modules' own imports are relative to them: all in js/.
        for (name, file) in DASHBOARD.files.iter().filter(|(n, _)| n.starts_with("js/")) {
            let source = std::str::from_utf8(&file.plain).unwrap();
            for import in references(source, "from \"./") {
                let path = format!("js/{import}");
                assert!(
                    DASHBOARD.files.contains_key(&path),
                    "{name} imports {path}, which is missing"
                );
            }
        }
    }

    /// The dashboard renders what strangers sent (paths, referrers, event names) as text only;
    /// its own scripts hold none of the ways to turn a string into markup or code, and the shell
    /// none of what the policy would block anyway.
    #[test]
    fn the_dashboard_never_parses_data_as_html_or_code() {
        let scripts: Vec<_> =
            DASHBOARD.files.iter().filter(|(n, _)| n.starts_with("js/")).collect();
        assert!(scripts.iter().any(|(n, _)| *n == "js/main.js"), "no script was checked");
        for (name, file) in scripts {
            let source = std::str::from_utf8(&file.plain).unwrap();
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "createContextualFragment",
                "DOMParser",
            ] {
                assert!(!source.contains(sink), "{name} uses {sink}");
            }
        }
        let shell = shell_text();
        assert!(!shell.contains(" style="), "index.html has an inline style");
        assert!(!shell.contains("<style"), "index.html has a style element");
        for tag in shell.split("<script").skip(1) {
            let (attributes, after) = tag.split_once('>').unwrap();
            assert!(attributes.contains(" src=\"/dashboard/"), "an inline script: <script{tag}");
            assert!(after.starts_with("</script>"), "an inline script: <script{tag}");
        }
    }

    #[tokio::test]
    async fn the_pages_leave_the_rest_of_the_server_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let state = AppState::new(store, ServerConfig::default(), vec![], Salts::new(0, [7; 64]));
        let app = crate::serve::router(Arc::new(state));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let response =
                    app.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
                let content_type = response.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
                (response.status(), content_type)
            }
        };
        let (status, content_type) = call("/api/v1/stats/aggregate?site_id=nowhere.example").await;
        assert!(status.is_client_error(), "{status}");
        assert_eq!(content_type, "application/json");
        assert_eq!(call("/healthz").await, (StatusCode::OK, "application/json".into()));
        assert!(call("/metrics").await.1.starts_with("text/plain"));
        assert!(call("/js/footfall.js").await.1.starts_with("text/javascript"));
        assert!(call("/login").await.1.starts_with("text/html"));
        assert!(call("/nowhere.example").await.1.starts_with("text/html"));
    }
}
