//! Static assets built into the binary: the browser tracker, served at `/js/footfall.js`.
//!
//! Served gzipped to clients that accept it (compressed once, at first request), with an ETag
//! so that browsers revalidate a cached copy with a `304` instead of fetching it again.

use std::io::Write;
use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flate2::Compression;
use flate2::write::GzEncoder;

/// The tracker's source, as served.
pub const TRACKER_JS: &str = include_str!("../../../web/tracker/footfall.js");

/// An asset in both encodings, and its ETag.
struct Asset {
    plain: &'static [u8],
    /// Cloned for each response: a reference count, not a copy.
    gzipped: Bytes,
    etag: HeaderValue,
    content_type: &'static str,
}

impl Asset {
    fn new(plain: &'static [u8], content_type: &'static str) -> Asset {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(plain).expect("writing to memory");
        let gzipped = gz.finish().expect("writing to memory");
        let hash = blake3::hash(plain).to_hex();
        let etag = HeaderValue::try_from(format!("\"{}\"", &hash[..16])).expect("hex is ASCII");
        Asset { plain, gzipped: gzipped.into(), etag, content_type }
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        // Short, so that an upgrade reaches visitors within the hour; the ETag keeps it cheap.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
        headers.insert(ETAG, self.etag.clone());
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
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
            (headers, self.plain).into_response()
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

static TRACKER: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(TRACKER_JS.as_bytes(), "text/javascript; charset=utf-8"));

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let tracker = |headers: HeaderMap| async move { TRACKER.respond(&headers) };
    Router::new().route("/js/footfall.js", get(tracker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_is_at_most_2_kib_gzipped() {
        let size = TRACKER.gzipped.len();
        assert!(size <= 2048, "footfall.js is {size} bytes gzipped; the budget is 2048");
    }

    async fn get(headers: &[(&str, &str)]) -> Response {
        use tower::ServiceExt;
        let mut request = axum::http::Request::get("/js/footfall.js");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(axum::body::Body::empty()).unwrap();
        routes::<()>().oneshot(request).await.unwrap()
    }

    async fn body(response: Response) -> Vec<u8> {
        use http_body_util::BodyExt;
        response.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn the_tracker_is_served_gzipped_and_revalidated() {
        let plain = get(&[]).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(plain.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        let etag = plain.headers()[ETAG].to_str().unwrap().to_owned();
        assert_eq!(body(plain).await, TRACKER_JS.as_bytes());

        let gzipped = get(&[("accept-encoding", "br, gzip")]).await;
        assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
        let mut unzipped = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&body(gzipped).await[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, TRACKER_JS);

        let cached = get(&[("if-none-match", &etag)]).await;
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        assert!(body(cached).await.is_empty());
        let stale = get(&[("if-none-match", "\"0000\"")]).await;
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
}
