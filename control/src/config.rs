//! The appliance configuration: one TOML file composed of each crate's section.
//!
//! Precedence: command-line flags over the file over the embedded defaults. Unknown keys
//! are an error that names the full key path (`ingress.limits.bogus`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tempmx_dns::DnsConfig;
use tempmx_ingress::IngressConfig;
pub use tempmx_ingress::policy::RecipientMode;
use tempmx_store::{Persistence, StoreConfig, StoreError};

/// Environment variable that overrides `admin.token`.
pub const ADMIN_TOKEN_ENV: &str = "TEMPMX_ADMIN_TOKEN";

/// Room kept in a store record for the header lines we prepend (Received:,
/// Authentication-Results:) on top of the largest message SMTP accepts.
const TRACE_HEADERS_BYTES_MAX: usize = 8 * 1024;

/// Segments each shard should get at least when the core count is chosen automatically.
const AUTO_SEGMENTS_PER_SHARD_MIN: u64 = 4;

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// SMTP ingress.
    pub ingress: IngressConfig,
    /// Message store.
    pub store: StoreConfig,
    /// Authoritative DNS.
    pub dns: DnsConfig,
    /// Public HTTP API and web inbox: listener.
    pub http: HttpConfig,
    /// Public HTTP API: access mode, limits, rate limits, CORS.
    pub api: crate::api::public::PublicConfig,
    /// Admin API and `/metrics`.
    pub admin: AdminConfig,
    /// The domain pool at first start, rotation policy and limits.
    pub pool: PoolConfig,
    /// Blocklists the pool's domains are checked against.
    pub blocklists: crate::blocklist::BlocklistConfig,
    /// Logging.
    pub log: LogConfig,
    /// Directory for persistent state; unset means memory only.
    pub data_dir: Option<PathBuf>,
    /// Fleet mode (a shared Redis Cluster); unset means a single embedded node.
    pub fleet: Option<crate::fleet::FleetConfig>,
}

/// Bounds of `http.header_read_ms_max` and `http.body_read_ms_max`.
const HTTP_READ_MS: std::ops::RangeInclusive<u64> = 100..=600_000;

/// The `[http]` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listener of the public API and web inbox.
    pub listen: SocketAddr,
    /// Longest time a client of either HTTP listener may take to send a request head
    /// (from connecting, or from the previous response); then the connection is closed.
    pub header_read_ms_max: u64,
    /// Longest time a client may take to send a request body once the head is in; then
    /// the answer is 408 and the connection is closed.
    pub body_read_ms_max: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_read_ms_max: 10_000,
            body_read_ms_max: 30_000,
        }
    }
}

impl HttpConfig {
    /// The deadlines both HTTP listeners apply.
    pub fn deadlines(&self) -> crate::api::Deadlines {
        crate::api::Deadlines {
            header_read: std::time::Duration::from_millis(self.header_read_ms_max),
            body_read: std::time::Duration::from_millis(self.body_read_ms_max),
        }
    }
}

/// The `[admin]` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listener of the admin API and `/metrics`.
    pub listen: SocketAddr,
    /// Bearer token of the admin API (prefer the `TEMPMX_ADMIN_TOKEN` environment variable).
    pub token: Option<String>,
    /// A second token that may only read the admin API.
    pub read_token: Option<String>,
    /// Whether `/metrics` needs the admin token too.
    pub metrics_need_token: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            token: None,
            read_token: None,
            metrics_need_token: false,
        }
    }
}

/// The `[pool]` section: domains the pool starts with when no state exists yet.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Domains that start `active`.
    pub domains: Vec<String>,
    /// `catch-all` (any local part) or `registered` (only created mailboxes).
    pub recipients: RecipientMode,
    /// Rotation policy on the first start (the saved one wins afterwards).
    pub policy: crate::pool::RotationPolicy,
    /// Limits of the control plane.
    pub limits: crate::pool::PoolLimits,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            domains: vec!["tempmx.test".to_owned()],
            recipients: RecipientMode::CatchAll,
            policy: crate::pool::RotationPolicy::default(),
            limits: crate::pool::PoolLimits::default(),
        }
    }
}

/// The `[log]` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `tempmx=debug,info`; `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Command-line flags that override the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--smtp`.
    pub smtp: Option<SocketAddr>,
    /// `--http`.
    pub http: Option<SocketAddr>,
    /// `--admin`.
    pub admin: Option<SocketAddr>,
    /// `--dns`.
    pub dns: Option<SocketAddr>,
    /// `--domain` (repeatable); replaces the configured pool domains when given.
    pub domains: Vec<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--fleet` (repeatable): Redis Cluster seed URLs; turns fleet mode on.
    pub fleet: Vec<String>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a wrong type.
    #[error("config file {path}: at `{key}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Dotted key path of the offending entry (`.` for the root).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The values parse but do not make sense together; every problem is listed.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|(key, message)| ConfigError::Parse {
            path: path.to_owned(),
            key,
            message,
        })
    }

    /// Parses TOML text; the error carries the key path and the message.
    pub fn from_toml(text: &str) -> Result<Self, (String, String)> {
        let de = toml::Deserializer::parse(text).map_err(|e| (".".to_owned(), e.to_string()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            (key, e.into_inner().message().to_owned())
        })
    }

    /// Applies command-line overrides and environment variables.
    pub fn apply(&mut self, o: Overrides) {
        if let Some(a) = o.smtp {
            self.ingress.listen = a;
        }
        if let Some(a) = o.http {
            self.http.listen = a;
        }
        if let Some(a) = o.admin {
            self.admin.listen = a;
        }
        if let Some(a) = o.dns {
            self.dns.listen = a;
        }
        if !o.domains.is_empty() {
            self.pool.domains = o.domains;
        }
        if let Some(d) = o.data_dir {
            self.data_dir = Some(d);
        }
        if !o.fleet.is_empty() {
            self.fleet.get_or_insert_with(Default::default).redis = o.fleet;
        }
        if let Some(dir) = &self.data_dir {
            self.store.persistence = Persistence::Disk;
            if self.store.dir.is_none() {
                self.store.dir = Some(dir.join("store"));
            }
        }
        if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV)
            && !token.is_empty()
        {
            self.admin.token = Some(token);
        }
    }

    /// Ingress cores (one store shard each): `ingress.cores`, or with 0 one per CPU, capped
    /// so every store shard still gets a few segments of the memory budget (a big machine
    /// with the laptop default budget). The flag says whether that cap applied.
    pub fn cores(&self) -> (usize, bool) {
        if self.ingress.cores > 0 {
            return (self.ingress.cores, false);
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let store = &self.store;
        let fit =
            store.memory_bytes_max / (AUTO_SEGMENTS_PER_SHARD_MIN * store.segment_bytes).max(1);
        let cores = cpus.min(usize::try_from(fit).unwrap_or(usize::MAX)).max(1);
        (cores, cores < cpus)
    }

    /// Checks every value and relation that `serve` would refuse short of binding its
    /// listeners (store sizing, record room, TLS files, listener clashes, each section's
    /// own rules), reporting every problem at once. `check-config` and `App::start` both
    /// run it, so a configuration it passes only fails to start on a busy port.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        if self.pool.domains.is_empty() {
            errors.push("pool.domains: at least one domain is needed".to_owned());
        }
        if let Some(f) = &self.fleet {
            errors.extend(f.problems());
            // The ingress checks recipients against its own registry, which in fleet mode
            // does not see mailboxes created on other nodes.
            if self.pool.recipients == RecipientMode::RegisteredOnly {
                errors.push(
                    "pool.recipients: \"registered\" is not supported in fleet mode yet \
                     (TODO(#15)); use the default catch-all"
                        .to_owned(),
                );
            }
        }
        for d in &self.pool.domains {
            if let Err(e) = tempmx_store::Domain::parse(d) {
                errors.push(format!(
                    "pool.domains: `{d}` is not a valid domain name: {e}"
                ));
            }
        }
        let admin_ip = self.admin.listen.ip();
        if self.admin.token.is_none() && !admin_ip.is_loopback() {
            errors.push(format!(
                "admin.listen: {admin_ip} is not a loopback address and no admin token is set \
                 (set {ADMIN_TOKEN_ENV} or admin.token)"
            ));
        }
        if self.admin.metrics_need_token
            && self.admin.token.is_none()
            && self.admin.read_token.is_none()
        {
            errors.push(
                "admin.metrics_need_token: set admin.token, admin.read_token or TEMPMX_ADMIN_TOKEN, \
                 or no scrape could ever pass"
                    .to_owned(),
            );
        }
        let l = &self.ingress.limits;
        if l.command_line_bytes_max < 512 {
            errors
                .push("ingress.limits.command_line_bytes_max: RFC 5321 needs at least 512".into());
        }
        if l.text_line_bytes_max < 1000 {
            errors.push("ingress.limits.text_line_bytes_max: RFC 5321 needs at least 1000".into());
        }
        if l.recipients_max == 0 {
            errors.push("ingress.limits.recipients_max: must be at least 1".into());
        }
        if self.ingress.read_buffer_bytes < l.command_line_bytes_max {
            errors.push(
                "ingress.read_buffer_bytes: must hold at least one command line \
                 (ingress.limits.command_line_bytes_max)"
                    .into(),
            );
        }
        if let Err(e) = self.api.validate() {
            errors.extend(e);
        }
        for (key, ms) in [
            ("http.header_read_ms_max", self.http.header_read_ms_max),
            ("http.body_read_ms_max", self.http.body_read_ms_max),
        ] {
            if !HTTP_READ_MS.contains(&ms) {
                let (lo, hi) = (HTTP_READ_MS.start(), HTTP_READ_MS.end());
                errors.push(format!("{key}: must be {lo}..={hi}"));
            }
        }
        if let Err(e) = self.ingress.greylist.validate() {
            errors.push(format!("ingress.greylist: {e}"));
        }
        if let Err(e) = self.dns.validate() {
            errors.push(format!("dns: {e}"));
        }
        self.validate_pool(&mut errors);
        self.validate_store(&mut errors);
        self.validate_tls(&mut errors);
        self.validate_listeners(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }
}

impl Config {
    /// The checks `Store::open` makes, then whether the largest message fits a record.
    fn validate_store(&self, errors: &mut Vec<String>) {
        let shards = self.cores().0;
        let geometry = self
            .store
            .validate(shards)
            .and_then(|()| tempmx_store::sizing::plan(&self.store, shards));
        let geometry = match geometry {
            Ok(g) => g,
            Err(StoreError::Config(list)) => return errors.extend(list),
            Err(e) => return errors.push(format!("store: {e}")),
        };
        let record_max = geometry.record_bytes_max();
        let message_max = self.ingress.limits.message_bytes_max;
        if message_max.saturating_add(TRACE_HEADERS_BYTES_MAX) > record_max {
            errors.push(format!(
                "ingress.limits.message_bytes_max ({message_max}) plus {TRACE_HEADERS_BYTES_MAX} \
                 bytes of trace headers exceeds the largest store record ({record_max} with \
                 store.segment_bytes = {}); raise store.segment_bytes or lower the message limit",
                self.store.segment_bytes
            ));
        }
    }

    /// Loads the configured certificate and key as the ingress will (a generated
    /// self-signed certificate needs no check).
    fn validate_tls(&self, errors: &mut Vec<String>) {
        let tls = &self.ingress.tls;
        if tls.disabled || (tls.cert_path.is_none() && tls.key_path.is_none()) {
            return;
        }
        if let Err(e) = tempmx_ingress::tls::server_config(tls, &self.ingress.hostname) {
            errors.push(format!("ingress.tls: {e}"));
        }
    }

    /// Two TCP listeners on one port would make the second bind fail (DNS listens on TCP
    /// too); port 0 asks for any free port and never clashes.
    fn validate_listeners(&self, errors: &mut Vec<String>) {
        let listeners = [
            ("ingress.listen", self.ingress.listen),
            ("http.listen", self.http.listen),
            ("admin.listen", self.admin.listen),
            ("dns.listen", self.dns.listen),
        ];
        for (i, (name, addr)) in listeners.iter().enumerate() {
            for (other, other_addr) in &listeners[i + 1..] {
                if clash(*addr, *other_addr) {
                    errors.push(format!(
                        "{name} ({addr}) and {other} ({other_addr}) use the same port; \
                         each listener needs its own address"
                    ));
                }
            }
        }
    }

    fn validate_pool(&self, errors: &mut Vec<String>) {
        for (section, result) in [
            (
                "pool.policy",
                self.pool.policy.validate(self.drain_secs_min()),
            ),
            ("pool.limits", self.pool.limits.validate()),
            ("blocklists", self.blocklists.validate()),
        ] {
            if let Err(e) = result {
                errors.extend(e.into_iter().map(|e| format!("{section}: {e}")));
            }
        }
    }

    /// The shortest drain a rotation policy may set, here and in the admin API: draining
    /// must outlast every mailbox, or mail for live addresses would bounce.
    pub fn drain_secs_min(&self) -> u64 {
        self.store.ttl_secs.max(self.api.ttl_secs_max)
    }
}

/// Whether binding `b` would fail because `a` holds the port (a wildcard address holds it
/// on every address of its family, and `[::]` on IPv4 too).
fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Goal: an unknown key anywhere is refused with its full path. Method: parse small files.
    #[test]
    fn unknown_keys_name_their_path() {
        let (key, msg) = Config::from_toml("[ingress.limits]\nbogus = 1\n").unwrap_err();
        assert_eq!(key, "ingress.limits.bogus");
        assert!(msg.contains("unknown field"), "{msg}");
        let (key, _) = Config::from_toml("nope = true\n").unwrap_err();
        assert_eq!(key, "nope");
        let (key, msg) = Config::from_toml("[ingress]\nlisten = 5\n").unwrap_err();
        assert_eq!(key, "ingress.listen");
        assert!(msg.contains("invalid type"), "{msg}");
    }

    // Goal: the embedded defaults are a valid configuration and an empty file means defaults.
    #[test]
    fn empty_file_is_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        c.validate().unwrap();
        assert_eq!(c.ingress.listen.to_string(), "127.0.0.1:2525");
        assert_eq!(c.pool.domains, vec!["tempmx.test".to_owned()]);
    }

    // Goal: the shipped example config is valid and spells out exactly the defaults.
    #[test]
    fn example_config_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/deploy/tempmx.example.toml");
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c, Config::default());
    }

    // Goal: flags override the file, and --data-dir switches the store to disk.
    #[test]
    fn flags_override_the_file() {
        let mut c = Config::from_toml("[ingress]\nlisten = \"127.0.0.1:2600\"\n").unwrap();
        c.apply(Overrides {
            smtp: Some("127.0.0.1:2700".parse().unwrap()),
            domains: vec!["a.test".into(), "b.test".into()],
            data_dir: Some("/tmp/x".into()),
            ..Overrides::default()
        });
        assert_eq!(c.ingress.listen.port(), 2700);
        assert_eq!(c.pool.domains.len(), 2);
        assert_eq!(c.store.persistence, Persistence::Disk);
        assert_eq!(c.store.dir.as_deref(), Some(Path::new("/tmp/x/store")));
    }

    // Goal: validation lists every problem, not just the first.
    #[test]
    fn validation_reports_all_problems() {
        let mut c = Config::default();
        c.pool.domains = vec!["bad domain".into()];
        c.ingress.limits.recipients_max = 0;
        c.admin.listen = "0.0.0.0:8081".parse().unwrap();
        c.admin.metrics_need_token = true;
        let ConfigError::Invalid(errs) = c.validate().unwrap_err() else {
            panic!("wrong error")
        };
        assert_eq!(errs.len(), 4, "{errs:?}");
    }
}
