//! The tempmx binary: CLI parsing, config loading, logging, then `tempmx::App`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tempmx::{App, Config, Overrides};

// A bin root resolves modules beside it (src/bin/), where cargo would take the file for a binary.
#[path = "tempmx/domains.rs"]
mod domains;
#[path = "tempmx/health.rs"]
mod health;
#[path = "tempmx/reload.rs"]
mod reload;

/// MX appliance for temporary-email fleets.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (SMTP, store, DNS, HTTP API, admin API).
    Serve(ConfigArgs),
    /// Load and validate the configuration, print it with defaults filled in, and exit.
    CheckConfig(ConfigArgs),
    /// Manage the domain pool through the admin API (token from TEMPMX_ADMIN_TOKEN).
    Domains(domains::DomainsArgs),
    /// Ask a running appliance's /healthz; exit status 0 when it answers 200 (container
    /// health checks).
    Health(health::HealthArgs),
}

#[derive(Clone, clap::Args)]
struct ConfigArgs {
    /// TOML config file; unknown keys are an error.
    #[arg(long)]
    config: Option<PathBuf>,
    /// SMTP listener (default 127.0.0.1:2525).
    #[arg(long)]
    smtp: Option<SocketAddr>,
    /// Public API and web inbox listener (default 127.0.0.1:8080).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Admin API and /metrics listener (default 127.0.0.1:8081).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Authoritative DNS listener, UDP and TCP (default 127.0.0.1:5353).
    #[arg(long)]
    dns: Option<SocketAddr>,
    /// Pool domain to start with (repeatable; default tempmx.test).
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Persist the store and control state under this directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Fleet mode: a Redis Cluster seed node, e.g. redis://127.0.0.1:7000 (repeatable).
    #[arg(long = "fleet", value_name = "URL")]
    fleet: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply(Overrides {
            smtp: self.smtp,
            http: self.http,
            admin: self.admin,
            dns: self.dns,
            domains: self.domains.clone(),
            data_dir: self.data_dir.clone(),
            fleet: self.fleet.clone(),
        });
        config.validate()?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tempmx: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Domains(args) => domains::run(args),
        Command::Health(args) => health::run(&args),
        Command::CheckConfig(args) => {
            let mut config = args.load()?;
            if config.admin.token.is_some() {
                config.admin.token = Some("(set, not shown)".to_owned());
            }
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Serve(args) => {
            let config = args.load()?;
            // A SIGHUP (systemctl reload) before the reload handler is installed must not
            // end the process, which is SIGHUP's default action; ignored until then.
            // SAFETY: setting a signal's disposition to SIG_IGN has no other effect.
            unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
            let log = tempmx::logging::init(&config.log);
            let running = config.clone();
            let app = App::start(config)?;
            let mut reloader = reload::Reloader::new(running, log, app.reloadable());
            app.run_until_signal(|| reloader.reload(args.load()))?;
            Ok(())
        }
    }
}
