//! Serves the benchmark zones of `/work/shared/anchors/dns-anchors.sh`:
//! every domain in `<dir>/zones.list` (or `tm0001.test` … `tm1000.test` when
//! the directory is `-`) with SOA, NS `ns1.<d>`, MX `10 mx.<d>`, TXT
//! `v=spf1 -all` and A 127.0.0.1 for `mx` and `ns1`, TTL 300 (plus our
//! `_dmarc` TXT, which the anchors' query mix never asks for).
//!
//! Usage: `serve_zones [LISTEN] [ZONE_DIR|-] [UDP_WORKERS] [SECONDS]`
//! (defaults `127.0.0.1:5400 - 2 600`); it exits after SECONDS.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tempmx_dns::{DnsConfig, MxHost, ZoneSnapshot, start};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let localhost = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let config = DnsConfig {
        listen: arg(0, "127.0.0.1:5400").parse()?,
        udp_workers: arg(2, "2").parse()?,
        mx_hosts: vec![MxHost {
            priority: 10,
            host: "mx.@".into(),
        }],
        name_servers: vec!["ns1.@".into()],
        soa_rname: "hostmaster.@".into(),
        host_addresses: BTreeMap::from([
            ("mx.@".into(), localhost.clone()),
            ("ns1.@".into(), localhost),
        ]),
        ..DnsConfig::default()
    };
    let domains: Vec<String> = match arg(1, "-").as_str() {
        "-" => (1..=1000).map(|i| format!("tm{i:04}.test")).collect(),
        dir => std::fs::read_to_string(format!("{dir}/zones.list"))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    };
    let domains = domains
        .iter()
        .map(|d| tempmx_store::Domain::parse(d).map_err(|e| format!("`{d}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let zones = domains.len();
    let handle = start(&config, ZoneSnapshot::serving(domains))?;
    println!(
        "serving {zones} zones on {} (pid {})",
        handle.local_addr(),
        std::process::id()
    );
    std::thread::sleep(Duration::from_secs(arg(3, "600").parse()?));
    let c = handle.counters();
    println!(
        "queries: {:?}\nresponses: {:?}",
        c.queries_by_type, c.responses_by_rcode
    );
    handle.shutdown();
    Ok(())
}
