//! Dashboard access with the real binary: a user added with `footfall user add` logs in over
//! HTTP, and a share link made with `footfall share create` reads its own site's stats until
//! `footfall share revoke`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{Server, Workspace, fails, ok};

const PASSWORD: &str = "correct horse battery";

/// One request to the server: its status, its head (status line and headers) and its body.
fn exchange(server: &Server, head: &str, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!(
        "{head}Host: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, head.to_owned(), body.to_owned())
}

fn login(server: &Server, password: &str) -> (u16, String, String) {
    let body = format!(r#"{{"username":"admin","password":"{password}"}}"#);
    exchange(server, "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\n", &body)
}

fn get(server: &Server, path: &str, cookie: Option<&str>) -> (u16, String) {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let (status, _, body) = exchange(server, &format!("GET {path} HTTP/1.1\r\n{cookie}"), "");
    (status, body)
}

#[test]
fn users_log_in_and_share_links_read_one_site_until_revoked() {
    let ws = Workspace::new();
    ws.ok(&["site", "add", "a.example"]);
    ws.ok(&["site", "add", "b.example"]);

    // No server: the command writes the store itself.
    let add = ["user", "add", "admin", "--password-stdin"];
    let out = ws.with_stdin(&add, "short\n");
    let err = fails(&add, out);
    assert!(err.contains("the password is too short: use at least 8 characters"), "{err}");
    let err = ws.fails(&["user", "add", "admin"]);
    assert!(err.contains("--password-stdin"), "{err}");
    let out = ws.with_stdin(&add, &format!("{PASSWORD}\n"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("added user `admin`"));
    ok(&add, out);

    // With a server: through its control socket.
    let server = Server::start(&ws);
    let add_ann = ["user", "add", "ann@example.com", "--password-stdin"];
    ok(&add_ann, ws.with_stdin(&add_ann, PASSWORD));
    let err = fails(&add, ws.with_stdin(&add, PASSWORD));
    assert!(err.contains("there is a user `admin` already"), "{err}");
    let users = ws.ok(&["user", "list"]);
    assert!(users.contains("admin") && users.contains("ann@example.com"), "{users}");
    assert!(!users.contains("argon2"), "{users}");

    let (status, _, body) = login(&server, "wrong horse battery");
    assert_eq!((status, body.as_str()), (401, r#"{"error":"wrong username or password"}"#));
    let (status, head, body) = login(&server, PASSWORD);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(r#"{"user":"admin","csrf":""#), "{body}");
    let set_cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie in {head}"));
    assert!(set_cookie.ends_with("; HttpOnly; SameSite=Lax; Path=/; Max-Age=2592000"));
    let cookie = set_cookie.split(';').next().unwrap();
    let (status, body) = get(&server, "/api/auth/me", Some(cookie));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(r#"{"user":"admin""#), "{body}");
    let (_, sites) = get(&server, "/api/sites", Some(cookie));
    assert!(sites.contains("a.example") && sites.contains("b.example"), "{sites}");
    assert_eq!(get(&server, "/api/sites", None).1, r#"{"sites":[],"user":null}"#);

    // A share link reads its own site, and only that.
    let url = ws.ok(&["share", "create", "a.example", "--name", "board"]);
    let token = url.trim_end().strip_prefix("/share/a.example?auth=").expect("a link's path alone");
    assert!(token.starts_with("ffs_") && token.len() == 36, "{url}");
    let full = ws.ok(&["share", "create", "a.example", "--base-url", "https://stats.example/"]);
    assert!(full.starts_with("https://stats.example/share/a.example?auth=ffs_"), "{full}");
    let listed = ws.ok(&["share", "list", "a.example"]);
    assert!(listed.contains(token) && listed.contains("board"), "{listed}");

    let stats = |site: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("&auth={t}")).unwrap_or_default();
        get(&server, &format!("/api/v1/stats/aggregate?site_id={site}&period=day{auth}"), None)
    };
    assert_eq!(stats("a.example", None).0, 401);
    let (status, body) = stats("a.example", Some(token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"results":{"visitors":{"value":0}}}"#);
    let (status, body) = stats("b.example", Some(token));
    assert_eq!(status, 403, "another site's link: {body}");

    ws.ok(&["share", "revoke", "a.example", token]);
    let (status, body) = stats("a.example", Some(token));
    assert_eq!(status, 401, "a revoked link: {body}");
    assert!(!ws.ok(&["share", "list", "a.example"]).contains(token));
    let err = ws.fails(&["share", "revoke", "a.example", token]);
    assert!(err.contains("has no share link"), "{err}");

    // Removing a user ends their sessions.
    ws.ok(&["user", "remove", "admin"]);
    assert_eq!(get(&server, "/api/auth/me", Some(cookie)).0, 401);
    let err = ws.fails(&["user", "remove", "admin"]);
    assert!(err.contains("there is no user `admin`"), "{err}");
}
