//! The command line: commands, options and help text.
//!
//! Settings that the configuration file can also hold are taken as text and checked by
//! [`config`](crate::config), which knows which layer each value came from.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use footfall_server::control::QueryKind;

use crate::config::Flags;

#[derive(Debug, Parser)]
#[command(
    name = "footfall",
    version,
    about = "Self-hosted, privacy-first, real-time web and product analytics.",
    after_help = "Settings come from footfall.toml (or --config), then FOOTFALL_* environment \
                  variables, then flags; each overrides the one before."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file; it must exist when named [default: footfall.toml, if it exists]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded store [default: footfall-data]
    #[arg(long, global = true, env = "FOOTFALL_DATA_DIR", value_name = "PATH")]
    pub data_dir: Option<String>,
    /// Keep footfall's state in Redis at this URL (redis://HOST:PORT/DB) instead of the
    /// embedded store in --data-dir. `bench` then runs its server on it (writing into it: use a
    /// spare database), counts Redis commands per event and compares a naive design
    #[arg(long, global = true, env = "FOOTFALL_REDIS_URL", value_name = "URL")]
    pub redis: Option<String>,
    /// Log filter such as `debug` or `footfall_server=debug`; RUST_LOG is read too
    /// [default: info,fjall=warn,lsm_tree=warn]
    #[arg(long, global = true, env = "FOOTFALL_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: collector, query API, pipeline and control socket
    Serve(ServeArgs),
    /// Add and list sites
    #[command(subcommand)]
    Site(SiteCommand),
    /// Create API keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Add, list and remove the users who log in to the dashboard
    #[command(subcommand)]
    User(UserCommand),
    /// Make, list and revoke read-only links to a site's dashboard
    #[command(subcommand)]
    Share(ShareCommand),
    /// Ask the stats API from the command line (the same answers as over HTTP)
    Query(QueryArgs),
    /// Load-test the collector over HTTP with generated traffic; report events/s and latency
    Bench(BenchArgs),
    /// Copy all state (sites, keys, counts, sessions, the event log) from one store into
    /// another that holds no footfall data: between a data directory and Redis, either way.
    /// Stop the servers on both first; the source is left as it was
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store to copy: a data directory, or a Redis URL (redis://HOST:PORT/DB). From Redis,
    /// what the spill in --data-dir holds is written to Redis first
    #[arg(long, value_name = "DIR|URL")]
    pub from: String,
    /// The store to copy into, which must hold no footfall data: a data directory (created if
    /// missing) or a Redis URL
    #[arg(long, value_name = "DIR|URL")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A running footfall to load, such as http://127.0.0.1:8420; start it with
    /// --trust-proxy so that each generated visitor counts as one [default: a server started
    /// in this process on a temporary data directory]
    #[arg(long)]
    pub url: Option<String>,
    /// The site to send events for; it must exist on a server given with --url
    #[arg(long, default_value = "bench.example")]
    pub site: String,
    /// Events per request, 1 to 100 [default: two runs, with 50 and with 1]
    #[arg(long)]
    pub batch: Option<usize>,
    /// Connections sending at once
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long each run lasts
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Most requests in one run, whatever the time
    #[arg(long, default_value_t = 2_000_000)]
    pub max_requests: usize,
    /// Distinct visitors the traffic comes from
    #[arg(long, default_value_t = 5_000)]
    pub visitors: u64,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:8420]
    #[arg(long, env = "FOOTFALL_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Take the client IP from X-Forwarded-For; only behind a proxy you run [default: false]
    #[arg(
        long,
        env = "FOOTFALL_TRUST_PROXY",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub trust_proxy: Option<String>,
    /// Inactivity that ends a session [default: 30]
    #[arg(long, env = "FOOTFALL_SESSION_TIMEOUT_MINUTES", value_name = "MINUTES")]
    pub session_timeout_minutes: Option<String>,
    /// How far a browser's `ts` may be from server time and still be used [default: 300]
    #[arg(long, env = "FOOTFALL_MAX_CLOCK_SKEW_SECONDS", value_name = "SECONDS")]
    pub max_clock_skew_seconds: Option<String>,
    /// Days to keep raw events in the log; 0 keeps them forever [default: 0]
    #[arg(long, env = "FOOTFALL_RETENTION_DAYS", value_name = "DAYS")]
    pub retention_days: Option<String>,
    /// With --redis: most megabytes of acknowledged events kept in --data-dir while Redis
    /// cannot take them; beyond, the collector answers 503 [default: 1024]
    #[arg(long, env = "FOOTFALL_REDIS_SPILL_MB", value_name = "MB")]
    pub redis_spill_mb: Option<String>,
    /// Longest wait before read events are applied to the rollups [default: 200]
    #[arg(long, env = "FOOTFALL_FLUSH_INTERVAL_MS", value_name = "MS")]
    pub flush_interval_ms: Option<String>,
    /// A MaxMind-format database (.mmdb) to find visitors' countries (and regions and cities,
    /// if it has them) by IP address [default: none]
    #[arg(long, env = "FOOTFALL_GEOIP_DATABASE", value_name = "PATH")]
    pub geoip_database: Option<String>,
    /// A request header set by a proxy you run that holds the visitor's country code, such as
    /// CF-IPCountry; used before the database [default: none]
    #[arg(long, env = "FOOTFALL_COUNTRY_HEADER", value_name = "NAME")]
    pub country_header: Option<String>,
    /// Feed the public site demo.footfall.example with made-up traffic: a month of history
    /// when it has none, then a live visit about every 20 seconds [default: false]
    #[arg(
        long,
        env = "FOOTFALL_DEMO",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub demo: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Add a site, or change the timezone or visibility of one
    Add {
        /// The site's domain, such as example.com
        domain: String,
        /// IANA timezone that defines the site's days, such as Europe/Berlin [default: UTC for
        /// a new site; an existing site keeps its own]
        #[arg(long, value_name = "TZ")]
        timezone: Option<String>,
        /// Let anyone read the site's stats without an API key
        #[arg(long, conflicts_with = "private")]
        public: bool,
        /// Require an API key for the site's stats (the default for a new site)
        #[arg(long)]
        private: bool,
    },
    /// List the sites
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key and print it on stdout (it is stored only as a hash)
    Create {
        /// A label for the key [default: the key's first characters]
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user who can log in to the dashboard; the password is asked for twice, or read
    /// from stdin
    Add {
        /// The user's name: letters, digits, `.`, `_`, `@` and `-`
        name: String,
        /// Read the password from stdin (without its final newline) instead of asking for it
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and end their login sessions
    Remove {
        /// The user's name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Make a link that shows a site's dashboard, read-only, to anyone who has it; print it
    Create {
        /// The site's domain
        site: String,
        /// A label for the link [default: its first characters]
        #[arg(long)]
        name: Option<String>,
        /// Print a full URL on this address, such as https://stats.example.com [default: the
        /// path alone]
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
    /// List a site's share links
    List {
        /// The site's domain
        site: String,
        /// Show full URLs on this address, such as https://stats.example.com [default: paths]
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke a share link: it stops working at once
    Revoke {
        /// The site's domain
        site: String,
        /// The link's id (its `auth=` value)
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Which query
    #[arg(value_enum)]
    pub kind: Kind,
    /// The site's domain
    #[arg(long)]
    pub site: String,
    /// realtime, day, 7d, 30d, month, 6mo, 12mo or custom [default: 30d]
    #[arg(long)]
    pub period: Option<String>,
    /// YYYY-MM-DD, or YYYY-MM-DD,YYYY-MM-DD for a custom period [default: today]
    #[arg(long)]
    pub date: Option<String>,
    /// Timeseries point width: minute, hour, date or month [default: by period]
    #[arg(long)]
    pub interval: Option<String>,
    /// Comma-separated: visitors, visits, pageviews, views_per_visit, bounce_rate,
    /// visit_duration, events [default: visitors]
    #[arg(long)]
    pub metrics: Option<String>,
    /// Breakdown property, such as event:page or visit:source
    #[arg(long)]
    pub property: Option<String>,
    /// Filters in Plausible's syntax, such as `visit:source==Google;event:page==/pricing`
    #[arg(long)]
    pub filters: Option<String>,
    /// Breakdown rows per page [default: 100]
    #[arg(long)]
    pub limit: Option<String>,
    /// Breakdown page, from 1 [default: 1]
    #[arg(long)]
    pub page: Option<String>,
    /// Print the API's JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    /// Totals over the period
    Aggregate,
    /// One row per interval
    Timeseries,
    /// One row per value of --property
    Breakdown,
    /// Visitors in the last 5 minutes
    Realtime,
}

impl From<Kind> for QueryKind {
    fn from(kind: Kind) -> QueryKind {
        match kind {
            Kind::Aggregate => QueryKind::Aggregate,
            Kind::Timeseries => QueryKind::Timeseries,
            Kind::Breakdown => QueryKind::Breakdown,
            Kind::Realtime => QueryKind::Realtime,
        }
    }
}

impl Cli {
    /// Parses the process's arguments (exiting with clap's message on a usage error), and picks
    /// out the settings that were typed on the command line.
    pub fn parse_with_flags() -> (Cli, Flags) {
        let matches = Cli::command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let flags = cli.flags(&matches);
        (cli, flags)
    }

    fn flags(&self, matches: &ArgMatches) -> Flags {
        let typed = |m: &ArgMatches, id: &str, value: &Option<String>| {
            value.clone().filter(|_| m.value_source(id) == Some(ValueSource::CommandLine))
        };
        let mut flags = Flags {
            data_dir: typed(matches, "data_dir", &self.global.data_dir),
            redis: typed(matches, "redis", &self.global.redis),
            log: typed(matches, "log", &self.global.log),
            ..Flags::default()
        };
        if let (Command::Serve(args), Some(("serve", m))) = (&self.command, matches.subcommand()) {
            flags.listen = typed(m, "listen", &args.listen);
            flags.trust_proxy = typed(m, "trust_proxy", &args.trust_proxy);
            flags.session_timeout_minutes =
                typed(m, "session_timeout_minutes", &args.session_timeout_minutes);
            flags.max_clock_skew_seconds =
                typed(m, "max_clock_skew_seconds", &args.max_clock_skew_seconds);
            flags.retention_days = typed(m, "retention_days", &args.retention_days);
            flags.flush_interval_ms = typed(m, "flush_interval_ms", &args.flush_interval_ms);
            flags.redis_spill_mb = typed(m, "redis_spill_mb", &args.redis_spill_mb);
            flags.geoip_database = typed(m, "geoip_database", &args.geoip_database);
            flags.country_header = typed(m, "country_header", &args.country_header);
            flags.demo = typed(m, "demo", &args.demo);
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn typed_flags_are_picked_out_wherever_they_stand() {
        let matches = Cli::command()
            .try_get_matches_from([
                "footfall",
                "serve",
                "--data-dir",
                "d",
                "--trust-proxy",
                "--listen=127.0.0.1:1",
                "--demo",
            ])
            .unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let flags = cli.flags(&matches);
        assert_eq!(flags.data_dir.as_deref(), Some("d"));
        assert_eq!(flags.trust_proxy.as_deref(), Some("true"));
        assert_eq!(flags.listen.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(flags.demo.as_deref(), Some("true"));
    }
}
