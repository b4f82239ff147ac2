//! `tempmx-bench`: command line over the tempmx-bench library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

use tempmx_bench::client::TxOptions;
use tempmx_bench::dns::{self, DnsConfig};
use tempmx_bench::e2e::{self, E2eConfig};
use tempmx_bench::pacing::Mode;
use tempmx_bench::report::Summary;
use tempmx_bench::smtp::{self, SmtpConfig};
use tempmx_bench::workload::{RcptCount, SizeDist, Spread, WorkloadSpec};

/// Load generator for SMTP servers, tempmx's API and authoritative DNS.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Flood an SMTP server and report throughput and latency.
    Smtp(SmtpArgs),
    /// Query an authoritative DNS server over UDP and report queries/s and latency.
    Dns(DnsArgs),
    /// Send over SMTP and time until the message shows up on the API's SSE stream.
    E2e(E2eArgs),
}

/// Options every load shares.
#[derive(Debug, Args)]
struct Common {
    /// Worker threads, each with its own runtime (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Open loop: total units per second, latency from the intended send time.
    /// Without it the load is closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this long (e.g. 30s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Bound on every wait for the server [default: smtp 30s, dns 2s, e2e 10s].
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Stop the run after this many errors.
    #[arg(long, default_value_t = 1000)]
    max_errors: u64,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Args)]
struct SmtpArgs {
    /// SMTP server address.
    #[arg(default_value = "127.0.0.1:2525")]
    target: SocketAddr,
    /// Parallel connections.
    #[arg(short = 'c', long, default_value_t = 20)]
    connections: usize,
    /// Stop after this many messages.
    #[arg(short = 'm', long)]
    messages: Option<u64>,
    /// Messages per connection before QUIT and reconnect (0: keep the connection).
    #[arg(long, default_value_t = 0)]
    per_connection: u64,
    /// Message size (headers included): 4096, 4k, 1k-64k (uniform), 1k:70,64k:30 (weighted).
    #[arg(short = 's', long, default_value = "4k")]
    size: String,
    /// Recipients per message: N or MIN-MAX.
    #[arg(long, default_value = "1")]
    rcpts: String,
    /// Distinct mailboxes recipients are drawn from (0: a new address every time).
    #[arg(long, default_value_t = 0)]
    mailboxes: u64,
    /// Spread over the mailboxes: uniform or zipf:S.
    #[arg(long, default_value = "uniform")]
    spread: String,
    /// Recipient domains, comma separated, picked uniformly.
    #[arg(long, default_value = "tempmx.test", value_delimiter = ',')]
    domains: Vec<String>,
    /// Envelope sender.
    #[arg(long, default_value = "bench@tempmx-bench.test")]
    from: String,
    /// EHLO name.
    #[arg(long, default_value = "tempmx-bench.test")]
    helo: String,
    /// Do not pipeline even if the server offers PIPELINING.
    #[arg(long)]
    no_pipelining: bool,
    /// Send with BDAT (when the server offers CHUNKING) instead of DATA.
    #[arg(long)]
    bdat: bool,
    /// Share of connections (0..=1) that use STARTTLS. Any certificate is accepted.
    #[arg(long, default_value_t = 0.0)]
    starttls: f64,
    /// TLS server name to send as SNI (default: none, the target IP).
    #[arg(long)]
    tls_name: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct DnsArgs {
    /// DNS server address.
    #[arg(default_value = "127.0.0.1:5353")]
    target: SocketAddr,
    /// Query list in dnsperf format (`<name> <type>` per line).
    #[arg(short = 'd', long)]
    queries: Option<PathBuf>,
    /// Without a query list: generate this many names q<i>.<zone>.
    #[arg(long, default_value_t = 1000)]
    names: usize,
    /// Zone of the generated names.
    #[arg(long, default_value = "tempmx.test")]
    zone: String,
    /// Record type of the generated names.
    #[arg(long, default_value = "A")]
    qtype: String,
    /// Stop after this many queries.
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// UDP sockets (source ports).
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Queries in flight per socket.
    #[arg(long, default_value_t = 32)]
    inflight: usize,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct E2eArgs {
    /// SMTP address of the server.
    #[arg(long, default_value = "127.0.0.1:2525")]
    smtp: SocketAddr,
    /// HTTP API address of the server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Mailboxes created and watched in parallel.
    #[arg(long, default_value_t = 10)]
    mailboxes: usize,
    /// Stop after this many messages.
    #[arg(short = 'm', long)]
    messages: Option<u64>,
    /// Message size: 4096, 4k, 1k-64k, 1k:70,64k:30.
    #[arg(short = 's', long, default_value = "4k")]
    size: String,
    /// Envelope sender.
    #[arg(long, default_value = "bench@tempmx-bench.test")]
    from: String,
    /// EHLO name.
    #[arg(long, default_value = "tempmx-bench.test")]
    helo: String,
    /// Longest one mailbox's creation waits out the API's rate limit (429, Retry-After).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    create_wait: Duration,
    #[command(flatten)]
    common: Common,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Smtp(a) => {
            let json = a.common.json;
            let summary = smtp::run(smtp_config(a)?)?;
            print_summary(&summary, json)
        }
        Cmd::Dns(a) => {
            let json = a.common.json;
            let summary = dns::run(dns_config(a)?)?;
            print_summary(&summary, json)
        }
        Cmd::E2e(a) => {
            let json = a.common.json;
            if let Some(note) = e2e::rate_limit_note(a.mailboxes) {
                eprintln!("{note}");
            }
            let summary = e2e::run(e2e_config(a)?)?;
            print_summary(&summary, json)
        }
    }
}

fn dns_config(a: DnsArgs) -> Result<DnsConfig> {
    let list = match &a.queries {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            dns::parse_query_list(&text)?
        }
        None => {
            let qtype = a
                .qtype
                .to_ascii_uppercase()
                .parse()
                .map_err(|_| anyhow::anyhow!("unknown record type {:?}", a.qtype))?;
            dns::generate_queries(a.names, &a.zone, qtype)?
        }
    };
    Ok(DnsConfig {
        target: a.target,
        queries: Arc::new(dns::encode_all(&list)?),
        threads: threads(a.common.threads),
        sockets: a.sockets,
        inflight: a.inflight,
        mode: mode(a.common.rate),
        count: a.count,
        duration: a.common.duration,
        timeout: a.common.timeout.unwrap_or(Duration::from_secs(2)),
        errors_max: a.common.max_errors,
        progress: !a.common.no_progress,
    })
}

fn e2e_config(a: E2eArgs) -> Result<E2eConfig> {
    Ok(E2eConfig {
        smtp: a.smtp,
        http: a.http,
        mailboxes: a.mailboxes,
        messages: a.messages,
        duration: a.common.duration,
        mode: mode(a.common.rate),
        size: SizeDist::parse(&a.size)?,
        timeout: a.common.timeout.unwrap_or(Duration::from_secs(10)),
        create_wait_max: a.create_wait,
        errors_max: a.common.max_errors,
        helo: a.helo,
        from: a.from,
        progress: !a.common.no_progress,
    })
}

fn smtp_config(a: SmtpArgs) -> Result<SmtpConfig> {
    let workload = WorkloadSpec {
        size: SizeDist::parse(&a.size)?,
        rcpts: RcptCount::parse(&a.rcpts)?,
        mailboxes: a.mailboxes,
        spread: Spread::parse(&a.spread)?,
        domains: a.domains,
        from: a.from,
    };
    Ok(SmtpConfig {
        target: a.target,
        connections: a.connections,
        threads: threads(a.common.threads),
        per_connection: a.per_connection,
        workload,
        tx: TxOptions {
            pipelining: !a.no_pipelining,
            bdat: a.bdat,
        },
        starttls_share: a.starttls,
        tls_name: a.tls_name,
        helo: a.helo,
        mode: mode(a.common.rate),
        messages: a.messages,
        duration: a.common.duration,
        timeout: a.common.timeout.unwrap_or(Duration::from_secs(30)),
        errors_max: a.common.max_errors,
        progress: !a.common.no_progress,
    })
}

fn threads(t: Option<usize>) -> usize {
    t.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn mode(rate: Option<f64>) -> Mode {
    rate.map_or(Mode::Closed, Mode::Open)
}

fn print_summary(s: &Summary, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(s).context("encoding the summary")?
        );
    } else {
        print!("{}", s.table());
    }
    Ok(())
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("bad duration {s:?}: expected e.g. 30s, 500ms, 2m");
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        // Goal: every unit and a bare number parse; junk is refused with a message.
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("7d").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        // Goal: clap's own checks of the argument definitions pass.
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
