//! Settings: the configuration file, then `FOOTFALL_*` environment variables, then command-line
//! flags, each overriding the one before. Every value is checked with a message that names where
//! it came from (`--listen`, `FOOTFALL_LISTEN`, `listen` in `footfall.toml`) and what to write.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use footfall_core::site::Site;
use footfall_server::engine::PipelineOptions;
use footfall_server::state::ServerConfig;
use serde::Deserialize;

/// Read when `--config` is not given, if it exists.
const DEFAULT_CONFIG: &str = "footfall.toml";
const DEFAULT_LISTEN: &str = "127.0.0.1:8420";
const DEFAULT_DATA_DIR: &str = "footfall-data";
const DEFAULT_SESSION_TIMEOUT_MINUTES: u64 = 30;
const DEFAULT_MAX_CLOCK_SKEW_SECONDS: u64 = 300;
const DEFAULT_FLUSH_INTERVAL_MS: u64 = 200;
const DEFAULT_REDIS_SPILL_MB: u64 = 1024;
/// The storage engine reports every database open and flush at `info`; that is its noise, not
/// footfall's news.
const DEFAULT_LOG: &str = "info,fjall=warn,lsm_tree=warn";

/// The configuration file's keys, all optional. Unknown keys are an error, so that a misspelt
/// key does not silently leave a default in place.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<String>,
    /// Relative to the configuration file's directory.
    data_dir: Option<PathBuf>,
    /// A Redis URL: state lives there instead of in `data_dir`.
    redis: Option<String>,
    /// Most megabytes of events kept in `data_dir` while Redis cannot take them.
    redis_spill_mb: Option<u64>,
    trust_proxy: Option<bool>,
    session_timeout_minutes: Option<u64>,
    max_clock_skew_seconds: Option<u64>,
    /// 0 keeps the raw event log forever.
    retention_days: Option<u64>,
    flush_interval_ms: Option<u64>,
    /// Relative to the configuration file's directory.
    geoip_database: Option<PathBuf>,
    country_header: Option<String>,
    /// Feed the demo site with made-up traffic.
    demo: Option<bool>,
    log: Option<String>,
    #[serde(default)]
    sites: Vec<SiteEntry>,
}

/// A `[[sites]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteEntry {
    domain: String,
    timezone: Option<String>,
    #[serde(default)]
    public: bool,
}

/// A configuration file that was read.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    values: FileConfig,
}

impl ConfigFile {
    /// Reads `explicit`, which must exist, or else [`DEFAULT_CONFIG`] if it exists.
    pub fn load(explicit: Option<&Path>) -> Result<Option<ConfigFile>> {
        let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG));
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                return Ok(None);
            }
            Err(e) => bail!("cannot read the configuration file {}: {e}", path.display()),
        };
        ConfigFile::parse(path, &text).map(Some)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile> {
        let values = toml::from_str(text)
            .with_context(|| format!("the configuration file {} is invalid", path.display()))?;
        Ok(ConfigFile { path: path.to_owned(), values })
    }

    /// What relative paths in the file are relative to.
    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }
}

/// Settings typed on the command line. Values clap took from the environment are not here: the
/// environment is its own layer, below the command line.
#[derive(Debug, Default)]
pub struct Flags {
    pub data_dir: Option<String>,
    pub redis: Option<String>,
    pub redis_spill_mb: Option<String>,
    pub log: Option<String>,
    pub listen: Option<String>,
    pub trust_proxy: Option<String>,
    pub session_timeout_minutes: Option<String>,
    pub max_clock_skew_seconds: Option<String>,
    pub retention_days: Option<String>,
    pub flush_interval_ms: Option<String>,
    pub geoip_database: Option<String>,
    pub country_header: Option<String>,
    pub demo: Option<String>,
}

/// The resolved settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Redis URL; when set, state lives in Redis rather than in `data_dir`.
    pub redis: Option<String>,
    /// Most bytes of acknowledged events kept in `data_dir` while Redis cannot take them.
    pub redis_spill_bytes: u64,
    pub listen: SocketAddr,
    pub server: ServerConfig,
    pub pipeline: PipelineOptions,
    /// `None` keeps the raw event log forever.
    pub retention_days: Option<u32>,
    /// A tracing filter.
    pub log: String,
    /// Sites declared in the configuration file.
    pub sites: Vec<Site>,
    /// A MaxMind-format database to locate visitors with; `serve` loads it.
    pub geoip_database: Option<PathBuf>,
    /// `serve` feeds the demo site with made-up traffic.
    pub demo: bool,
}

/// One setting's name in each layer.
struct Names {
    key: &'static str,
    /// The first of these that is set is the environment's value.
    env: &'static [&'static str],
    flag: &'static str,
}

const DATA_DIR: Names = Names { key: "data_dir", env: &["FOOTFALL_DATA_DIR"], flag: "data-dir" };
const REDIS: Names = Names { key: "redis", env: &["FOOTFALL_REDIS_URL"], flag: "redis" };
const REDIS_SPILL: Names =
    Names { key: "redis_spill_mb", env: &["FOOTFALL_REDIS_SPILL_MB"], flag: "redis-spill-mb" };
const LOG: Names = Names { key: "log", env: &["FOOTFALL_LOG", "RUST_LOG"], flag: "log" };
const LISTEN: Names = Names { key: "listen", env: &["FOOTFALL_LISTEN"], flag: "listen" };
const TRUST_PROXY: Names =
    Names { key: "trust_proxy", env: &["FOOTFALL_TRUST_PROXY"], flag: "trust-proxy" };
const SESSION_TIMEOUT: Names = Names {
    key: "session_timeout_minutes",
    env: &["FOOTFALL_SESSION_TIMEOUT_MINUTES"],
    flag: "session-timeout-minutes",
};
const MAX_CLOCK_SKEW: Names = Names {
    key: "max_clock_skew_seconds",
    env: &["FOOTFALL_MAX_CLOCK_SKEW_SECONDS"],
    flag: "max-clock-skew-seconds",
};
const RETENTION: Names =
    Names { key: "retention_days", env: &["FOOTFALL_RETENTION_DAYS"], flag: "retention-days" };
const GEOIP_DATABASE: Names =
    Names { key: "geoip_database", env: &["FOOTFALL_GEOIP_DATABASE"], flag: "geoip-database" };
const COUNTRY_HEADER: Names =
    Names { key: "country_header", env: &["FOOTFALL_COUNTRY_HEADER"], flag: "country-header" };
const DEMO: Names = Names { key: "demo", env: &["FOOTFALL_DEMO"], flag: "demo" };
const FLUSH_INTERVAL: Names = Names {
    key: "flush_interval_ms",
    env: &["FOOTFALL_FLUSH_INTERVAL_MS"],
    flag: "flush-interval-ms",
};

/// The layers below the command line.
struct Layers<'a> {
    file: Option<&'a ConfigFile>,
    env: &'a HashMap<String, String>,
}

impl Layers<'_> {
    /// The value of the highest layer that sets the setting, parsed and checked. `file` is the
    /// file's value, already typed by TOML or still to be parsed.
    fn pick<T>(
        &self,
        names: &Names,
        flag: Option<&str>,
        file: Option<Result<T, String>>,
        parse: impl Fn(&str) -> Result<T, String>,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> Result<Option<T>> {
        // An empty variable counts as unset, as it does for clap.
        let env = names
            .env
            .iter()
            .find_map(|&var| self.env.get(var).filter(|v| !v.is_empty()).map(|v| (var, v)));
        let (value, from) = if let Some(raw) = flag {
            (parse(raw), format!("--{}", names.flag))
        } else if let Some((var, raw)) = env {
            (parse(raw), var.to_owned())
        } else if let (Some(value), Some(file)) = (file, self.file) {
            (value, format!("`{}` in {}", names.key, file.path.display()))
        } else {
            return Ok(None);
        };
        value.and_then(|v| check(&v).map(|()| v)).map(Some).map_err(|why| anyhow!("{from}: {why}"))
    }
}

impl Settings {
    /// Resolves the settings from the file (if any), the environment and the command line.
    pub fn resolve(
        file: Option<&ConfigFile>,
        env: &HashMap<String, String>,
        flags: &Flags,
    ) -> Result<Settings> {
        let layers = Layers { file, env };
        let values = file.map(|f| &f.values);

        let data_dir = layers
            .pick(
                &DATA_DIR,
                flags.data_dir.as_deref(),
                file.and_then(|f| f.values.data_dir.as_ref().map(|d| Ok(f.dir().join(d)))),
                |s| Ok(PathBuf::from(s)),
                |p: &PathBuf| non_empty_path(p),
            )?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let redis = layers.pick(
            &REDIS,
            flags.redis.as_deref(),
            values.and_then(|v| v.redis.clone()).map(Ok),
            |s| Ok(s.to_owned()),
            |url: &String| check_redis_url(url),
        )?;
        let redis_spill_mb = layers
            .pick(
                &REDIS_SPILL,
                flags.redis_spill_mb.as_deref(),
                values.and_then(|v| v.redis_spill_mb).map(Ok),
                parse_number,
                in_range(1, 1 << 20, "megabytes"),
            )?
            .unwrap_or(DEFAULT_REDIS_SPILL_MB);
        let log = layers
            .pick(
                &LOG,
                flags.log.as_deref(),
                values.and_then(|v| v.log.as_deref()).map(parse_log),
                parse_log,
                |_| Ok(()),
            )?
            .unwrap_or_else(|| DEFAULT_LOG.to_owned());
        let listen = layers
            .pick(
                &LISTEN,
                flags.listen.as_deref(),
                values.and_then(|v| v.listen.as_deref()).map(parse_listen),
                parse_listen,
                |_| Ok(()),
            )?
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"));
        let trust_proxy = layers
            .pick(
                &TRUST_PROXY,
                flags.trust_proxy.as_deref(),
                values.and_then(|v| v.trust_proxy).map(Ok),
                parse_bool,
                |_| Ok(()),
            )?
            .unwrap_or(false);
        let demo = layers
            .pick(
                &DEMO,
                flags.demo.as_deref(),
                values.and_then(|v| v.demo).map(Ok),
                parse_bool,
                |_| Ok(()),
            )?
            .unwrap_or(false);
        let session_timeout_minutes = layers
            .pick(
                &SESSION_TIMEOUT,
                flags.session_timeout_minutes.as_deref(),
                values.and_then(|v| v.session_timeout_minutes).map(Ok),
                parse_number,
                in_range(1, 24 * 60, "minutes"),
            )?
            .unwrap_or(DEFAULT_SESSION_TIMEOUT_MINUTES);
        let max_clock_skew_seconds = layers
            .pick(
                &MAX_CLOCK_SKEW,
                flags.max_clock_skew_seconds.as_deref(),
                values.and_then(|v| v.max_clock_skew_seconds).map(Ok),
                parse_number,
                in_range(0, 24 * 3600, "seconds"),
            )?
            .unwrap_or(DEFAULT_MAX_CLOCK_SKEW_SECONDS);
        let retention_days = layers
            .pick(
                &RETENTION,
                flags.retention_days.as_deref(),
                values.and_then(|v| v.retention_days).map(Ok),
                parse_number,
                in_range(0, 100 * 366, "days, 0 to keep events forever"),
            )?
            .filter(|&days| days > 0)
            .map(|days| u32::try_from(days).expect("checked against the range"));
        let flush_interval_ms = layers
            .pick(
                &FLUSH_INTERVAL,
                flags.flush_interval_ms.as_deref(),
                values.and_then(|v| v.flush_interval_ms).map(Ok),
                parse_number,
                in_range(1, 60_000, "milliseconds"),
            )?
            .unwrap_or(DEFAULT_FLUSH_INTERVAL_MS);
        let geoip_database = layers.pick(
            &GEOIP_DATABASE,
            flags.geoip_database.as_deref(),
            file.and_then(|f| f.values.geoip_database.as_ref().map(|d| Ok(f.dir().join(d)))),
            |s| Ok(PathBuf::from(s)),
            |p: &PathBuf| non_empty_path(p),
        )?;
        let country_header = layers.pick(
            &COUNTRY_HEADER,
            flags.country_header.as_deref(),
            values.and_then(|v| v.country_header.clone()).map(Ok),
            |s| Ok(s.trim().to_ascii_lowercase()),
            |name: &String| {
                let token = |b: u8| b.is_ascii_alphanumeric() || b"-_".contains(&b);
                match !name.is_empty() && name.bytes().all(token) {
                    true => Ok(()),
                    false => Err(format!("`{name}` is not a header name, such as CF-IPCountry")),
                }
            },
        )?;

        Ok(Settings {
            data_dir,
            redis,
            redis_spill_bytes: redis_spill_mb << 20,
            listen,
            server: ServerConfig {
                trust_proxy,
                max_clock_skew_ms: max_clock_skew_seconds as i64 * 1000,
                session_timeout_ms: session_timeout_minutes as i64 * 60_000,
                country_header,
                geo: None,
            },
            pipeline: PipelineOptions {
                flush_interval: Duration::from_millis(flush_interval_ms),
                ..PipelineOptions::default()
            },
            retention_days,
            log,
            sites: file.map(declared_sites).transpose()?.unwrap_or_default(),
            geoip_database,
            demo,
        })
    }
}

fn non_empty_path(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() { Err("must not be empty".into()) } else { Ok(()) }
}

/// A URL redis-rs takes; the rest (host, password) is checked by connecting.
fn check_redis_url(url: &str) -> Result<(), String> {
    const SCHEMES: [&str; 4] = ["redis://", "rediss://", "unix://", "redis+unix://"];
    if SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
        Ok(())
    } else {
        // Not echoed: it may hold a password.
        Err("not a Redis URL; write it as redis://HOST:PORT/DB (rediss:// for TLS)".into())
    }
}

/// The file's `[[sites]]`, validated.
fn declared_sites(file: &ConfigFile) -> Result<Vec<Site>> {
    let mut sites: Vec<Site> = Vec::new();
    for (i, entry) in file.values.sites.iter().enumerate() {
        let at = || format!("sites[{i}] in {}", file.path.display());
        let timezone = entry.timezone.as_deref().unwrap_or("UTC");
        let site = Site::new(&entry.domain, timezone, entry.public)
            .map_err(|e| anyhow!("{}: {e}", at()))?;
        if sites.iter().any(|s| s.domain == site.domain) {
            bail!("{}: `{}` is declared twice; keep one [[sites]] table for it", at(), site.domain);
        }
        sites.push(site);
    }
    Ok(sites)
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("`{s}` is not an address and port; write IP:PORT, e.g. `{DEFAULT_LISTEN}`")
    })
}

fn parse_log(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("`{s}` is not a log filter ({e}); write e.g. `info` or `debug`"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not true or false")),
    }
}

fn parse_number(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| format!("`{s}` is not a whole number"))
}

fn in_range(min: u64, max: u64, unit: &'static str) -> impl Fn(&u64) -> Result<(), String> {
    move |&v| {
        if (min..=max).contains(&v) {
            Ok(())
        } else {
            Err(format!("{v} is out of range; use {min} to {max} ({unit})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ConfigFile {
        ConfigFile::parse(Path::new("conf/footfall.toml"), text).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    fn error(file: Option<&ConfigFile>, env: &HashMap<String, String>, flags: &Flags) -> String {
        Settings::resolve(file, env, flags).unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::resolve(None, &env(&[]), &Flags::default()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8420".parse().unwrap());
        assert_eq!(s.data_dir, Path::new("footfall-data"));
        assert!(!s.server.trust_proxy);
        assert_eq!(s.server.session_timeout_ms, 30 * 60_000);
        assert_eq!(s.server.max_clock_skew_ms, 300_000);
        assert_eq!(s.pipeline.flush_interval, Duration::from_millis(200));
        assert_eq!(s.retention_days, None);
        assert_eq!(s.log, DEFAULT_LOG);
        assert!(s.sites.is_empty());
        assert_eq!(s.redis, None);
        assert!(!s.demo);
    }

    #[test]
    fn demo_comes_from_any_layer() {
        let f = file("demo = true");
        assert!(Settings::resolve(Some(&f), &env(&[]), &Flags::default()).unwrap().demo);
        let e = env(&[("FOOTFALL_DEMO", "false")]);
        assert!(!Settings::resolve(Some(&f), &e, &Flags::default()).unwrap().demo);
        let flags = Flags { demo: Some("true".into()), ..Flags::default() };
        assert!(Settings::resolve(Some(&f), &e, &flags).unwrap().demo);
        let flags = Flags { demo: Some("sure".into()), ..Flags::default() };
        assert_eq!(error(None, &env(&[]), &flags), "--demo: `sure` is not true or false");
    }

    #[test]
    fn redis_comes_from_any_layer_and_must_be_a_redis_url() {
        let f = file(r#"redis = "redis://file:6379/0""#);
        let s = Settings::resolve(Some(&f), &env(&[]), &Flags::default()).unwrap();
        assert_eq!(s.redis.as_deref(), Some("redis://file:6379/0"));
        let e = env(&[("FOOTFALL_REDIS_URL", "rediss://env:6380/2")]);
        let s = Settings::resolve(Some(&f), &e, &Flags::default()).unwrap();
        assert_eq!(s.redis.as_deref(), Some("rediss://env:6380/2"));
        let flags = Flags { redis: Some("redis://flag/1".into()), ..Flags::default() };
        assert_eq!(
            Settings::resolve(Some(&f), &e, &flags).unwrap().redis.as_deref(),
            Some("redis://flag/1")
        );

        let flags = Flags { redis: Some("http://:secret@host:6379".into()), ..Flags::default() };
        let msg = error(None, &env(&[]), &flags);
        assert_eq!(
            msg,
            "--redis: not a Redis URL; write it as redis://HOST:PORT/DB (rediss:// for TLS)"
        );
        assert!(!msg.contains("secret"));
    }

    #[test]
    fn the_environment_overrides_the_file_and_flags_override_both() {
        let f = file(
            r#"
            listen = "127.0.0.1:1000"
            data_dir = "data"
            trust_proxy = true
            session_timeout_minutes = 10
            max_clock_skew_seconds = 60
            retention_days = 7
            flush_interval_ms = 50
            log = "warn"
            "#,
        );
        let only_file = Settings::resolve(Some(&f), &env(&[]), &Flags::default()).unwrap();
        assert_eq!(only_file.listen.port(), 1000);
        // Relative to the file, not to the working directory.
        assert_eq!(only_file.data_dir, Path::new("conf/data"));
        assert!(only_file.server.trust_proxy);
        assert_eq!(only_file.server.session_timeout_ms, 10 * 60_000);
        assert_eq!(only_file.server.max_clock_skew_ms, 60_000);
        assert_eq!(only_file.retention_days, Some(7));
        assert_eq!(only_file.pipeline.flush_interval, Duration::from_millis(50));
        assert_eq!(only_file.log, "warn");

        let e = env(&[
            ("FOOTFALL_LISTEN", "127.0.0.1:2000"),
            ("FOOTFALL_DATA_DIR", "env-data"),
            ("FOOTFALL_TRUST_PROXY", "no"),
            ("FOOTFALL_SESSION_TIMEOUT_MINUTES", "20"),
            ("FOOTFALL_RETENTION_DAYS", "0"),
            ("RUST_LOG", "debug"),
        ]);
        let with_env = Settings::resolve(Some(&f), &e, &Flags::default()).unwrap();
        assert_eq!(with_env.listen.port(), 2000);
        assert_eq!(with_env.data_dir, Path::new("env-data"));
        assert!(!with_env.server.trust_proxy);
        assert_eq!(with_env.server.session_timeout_ms, 20 * 60_000);
        assert_eq!(with_env.retention_days, None, "0 keeps events forever");
        assert_eq!(with_env.log, "debug");
        // Not set in the environment: the file's value stands.
        assert_eq!(with_env.server.max_clock_skew_ms, 60_000);

        let flags = Flags {
            listen: Some("127.0.0.1:3000".into()),
            data_dir: Some("flag-data".into()),
            trust_proxy: Some("true".into()),
            log: Some("error".into()),
            ..Flags::default()
        };
        let with_flags = Settings::resolve(Some(&f), &e, &flags).unwrap();
        assert_eq!(with_flags.listen.port(), 3000);
        assert_eq!(with_flags.data_dir, Path::new("flag-data"));
        assert!(with_flags.server.trust_proxy);
        assert_eq!(with_flags.log, "error");
        assert_eq!(with_flags.server.session_timeout_ms, 20 * 60_000);
    }

    #[test]
    fn footfall_log_wins_over_rust_log_and_empty_variables_are_unset() {
        let e = env(&[("RUST_LOG", "debug"), ("FOOTFALL_LOG", "trace"), ("FOOTFALL_LISTEN", "")]);
        let s = Settings::resolve(None, &e, &Flags::default()).unwrap();
        assert_eq!(s.log, "trace");
        assert_eq!(s.listen.port(), 8420);
    }

    #[test]
    fn bad_values_name_their_source_and_what_to_write() {
        let flags = Flags { listen: Some("localhost".into()), ..Flags::default() };
        let msg = error(None, &env(&[]), &flags);
        assert!(msg.starts_with("--listen: `localhost` is not an address"), "{msg}");
        assert!(msg.contains("127.0.0.1:8420"), "{msg}");

        let msg =
            error(None, &env(&[("FOOTFALL_SESSION_TIMEOUT_MINUTES", "0")]), &Flags::default());
        assert_eq!(
            msg,
            "FOOTFALL_SESSION_TIMEOUT_MINUTES: 0 is out of range; use 1 to 1440 (minutes)"
        );

        let msg = error(None, &env(&[("FOOTFALL_TRUST_PROXY", "maybe")]), &Flags::default());
        assert_eq!(msg, "FOOTFALL_TRUST_PROXY: `maybe` is not true or false");

        let flags = Flags { flush_interval_ms: Some("fast".into()), ..Flags::default() };
        assert_eq!(
            error(None, &env(&[]), &flags),
            "--flush-interval-ms: `fast` is not a whole number"
        );

        let f = file("max_clock_skew_seconds = 100000");
        assert_eq!(
            error(Some(&f), &env(&[]), &Flags::default()),
            "`max_clock_skew_seconds` in conf/footfall.toml: 100000 is out of range; use 0 to \
             86400 (seconds)"
        );

        let f = file(r#"listen = "8420""#);
        let msg = error(Some(&f), &env(&[]), &Flags::default());
        assert!(msg.starts_with("`listen` in conf/footfall.toml: `8420` is not an address"));

        let msg = error(None, &env(&[("FOOTFALL_LOG", "[[[")]), &Flags::default());
        assert!(msg.starts_with("FOOTFALL_LOG: `[[[` is not a log filter"), "{msg}");

        let flags = Flags { data_dir: Some(String::new()), ..Flags::default() };
        assert_eq!(error(None, &env(&[]), &flags), "--data-dir: must not be empty");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors_naming_the_key_and_the_file() {
        let err = ConfigFile::parse(Path::new("my.toml"), "lisen = \"127.0.0.1:1\"").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("my.toml") && msg.contains("unknown field `lisen`"), "{msg}");

        let err = ConfigFile::parse(Path::new("my.toml"), "retention_days = -1").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("my.toml") && msg.contains("retention_days"), "{msg}");

        let text = "[[sites]]\ndomain = \"example.com\"\ncolour = \"red\"";
        let msg = format!("{:#}", ConfigFile::parse(Path::new("my.toml"), text).unwrap_err());
        assert!(msg.contains("unknown field `colour`"), "{msg}");
    }

    #[test]
    fn declared_sites_are_validated() {
        let f = file(
            r#"
            [[sites]]
            domain = "https://www.Example.com/"
            timezone = "Europe/Berlin"
            public = true

            [[sites]]
            domain = "shop.example"
            "#,
        );
        let s = Settings::resolve(Some(&f), &env(&[]), &Flags::default()).unwrap();
        assert_eq!(s.sites.len(), 2);
        assert_eq!(s.sites[0], Site::new("example.com", "Europe/Berlin", true).unwrap());
        assert_eq!(s.sites[1], Site::new("shop.example", "UTC", false).unwrap());

        let f = file("[[sites]]\ndomain = \"example.com\"\ntimezone = \"Mars/Olympus\"");
        let msg = error(Some(&f), &env(&[]), &Flags::default());
        assert!(msg.starts_with("sites[0] in conf/footfall.toml: unknown timezone `Mars/Olympus`"));

        let f = file("[[sites]]\ndomain = \"a.com\"\n[[sites]]\ndomain = \"bad domain\"");
        let msg = error(Some(&f), &env(&[]), &Flags::default());
        assert!(msg.starts_with("sites[1] in conf/footfall.toml: `bad domain` is not a domain"));

        let f = file("[[sites]]\ndomain = \"a.com\"\n[[sites]]\ndomain = \"www.a.com\"");
        let msg = error(Some(&f), &env(&[]), &Flags::default());
        assert!(msg.contains("`a.com` is declared twice"), "{msg}");
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let msg = ConfigFile::load(Some(&missing)).unwrap_err().to_string();
        assert!(msg.contains("nope.toml"), "{msg}");
    }
}
