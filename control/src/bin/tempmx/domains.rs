//! `tempmx domains …`: the operator CLI over the admin API (plain HTTP, token from
//! `TEMPMX_ADMIN_TOKEN`).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tempmx::api::public::types::rfc3339;

/// Whole-request timeout: the admin API answers at once except `check`, bounded by the
/// blocklist query timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer read (a list of the largest pool is well below this).
const RESPONSE_BYTES_MAX: u64 = 64 << 20;

/// Manage the domain pool through the admin API.
#[derive(Args)]
pub struct DomainsArgs {
    /// Base URL of the admin API.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    admin: String,
    #[command(subcommand)]
    command: DomainsCommand,
}

#[derive(Subcommand)]
enum DomainsCommand {
    /// List domains with state, listing and counters.
    List {
        /// Only domains in this state (pending, active, draining, retired).
        #[arg(long)]
        state: Option<String>,
    },
    /// Add domains (pending unless --active).
    Add {
        /// Domain names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Add them active at once instead of pending.
        #[arg(long)]
        active: bool,
        /// Why (audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Retire a domain now (null MX, mail refused).
    Retire {
        /// Domain name.
        name: String,
        /// Why (audit log).
        #[arg(long, default_value = "retired from the command line")]
        reason: String,
    },
    /// Check a domain on every blocklist now.
    Check {
        /// Domain name.
        name: String,
    },
}

/// Runs the subcommand, printing the result on stdout.
pub fn run(args: DomainsArgs) -> anyhow::Result<()> {
    let client = Client::new(args.admin.trim_end_matches('/'));
    match args.command {
        DomainsCommand::List { state } => {
            let query = state
                .map(|s| format!("?state={}", encode(&s)))
                .unwrap_or_default();
            print_table(&client.send("GET", &format!("/admin/v1/domains{query}"), None)?);
        }
        DomainsCommand::Add {
            names,
            active,
            reason,
        } => {
            let state = if active { "active" } else { "pending" };
            let body = json!({ "domains": names, "state": state, "reason": reason });
            let reply = client.send("POST", "/admin/v1/domains", Some(body))?;
            for r in reply["results"].as_array().into_iter().flatten() {
                let what = if r["added"] == json!(true) {
                    "added"
                } else {
                    "exists"
                };
                println!("{}\t{what}", r["name"].as_str().unwrap_or("?"));
            }
        }
        DomainsCommand::Retire { name, reason } => {
            let body = json!({ "state": "retired", "reason": reason });
            let reply = client.send(
                "PUT",
                &format!("/admin/v1/domains/{}/state", encode(&name)),
                Some(body),
            )?;
            println!(
                "{}\t{}",
                reply["name"].as_str().unwrap_or("?"),
                reply["state"].as_str().unwrap_or("?")
            );
        }
        DomainsCommand::Check { name } => {
            let reply = client.send(
                "POST",
                "/admin/v1/blocklists/check",
                Some(json!({ "domain": name })),
            )?;
            for r in reply["results"].as_array().into_iter().flatten() {
                let o = &r["outcome"];
                let why = o["reason"].as_str().or(o["detail"].as_str()).unwrap_or("");
                println!(
                    "{}\t{}\t{}",
                    r["list"].as_str().unwrap_or("?"),
                    o["status"].as_str().unwrap_or("?"),
                    why
                );
            }
            let listing = &reply["listing"];
            if !listing.is_null() {
                println!(
                    "confirmed listing: {} ({})",
                    listing["list"].as_str().unwrap_or("?"),
                    listing["reason"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

fn print_table(reply: &Value) {
    println!("NAME\tSTATE\tLISTED\tMESSAGES\tMAILBOXES\tLAST MESSAGE");
    for d in reply["domains"].as_array().into_iter().flatten() {
        let listed = d["listing"]["list"].as_str().unwrap_or("-");
        let last = d["last_message_at"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |s| rfc3339(s.saturating_mul(1000)));
        println!(
            "{}\t{}\t{listed}\t{}\t{}\t{last}",
            d["name"].as_str().unwrap_or("?"),
            d["state"].as_str().unwrap_or("?"),
            d["messages"],
            d["mailboxes"]
        );
    }
}

struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(base: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build();
        let token = std::env::var(tempmx::config::ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty());
        Self {
            base: base.to_owned(),
            token,
            agent: config.into(),
        }
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the problem detail.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req.body(body.map(|b| b.to_string()).unwrap_or_default())?;
        let mut resp = self
            .agent
            .run(req)
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_string()?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).context("admin API answered non-JSON")?
        };
        if !status.is_success() {
            let detail = value["detail"].as_str().unwrap_or(text.as_str());
            bail!("{method} {path}: {status}: {detail}");
        }
        Ok(value)
    }
}

/// Percent-encodes a path or query segment (everything but RFC 3986 unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
