//! `tempmx domains …`: the operator CLI over the admin API (plain HTTP, token from
//! `TEMPMX_ADMIN_TOKEN`, URL from `--admin` anywhere on the line or `TEMPMX_ADMIN_URL`).
//! Every command prints a short table by default and the API's JSON with `--json`.

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
/// Environment variable naming the admin API's base URL.
const ADMIN_URL_ENV: &str = "TEMPMX_ADMIN_URL";
/// The admin API of `tempmx serve` on its defaults.
const ADMIN_URL_DEFAULT: &str = "http://127.0.0.1:8081";

/// Manage the domain pool through the admin API.
#[derive(Args)]
pub struct DomainsArgs {
    /// Base URL of the admin API [env: TEMPMX_ADMIN_URL; default: http://127.0.0.1:8081].
    #[arg(long, global = true)]
    admin: Option<String>,
    /// Print the admin API's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
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
    /// Offer a domain for new addresses now (pending or draining -> active).
    Activate(StateArgs),
    /// Stop offering a domain; it keeps taking mail for its mailboxes until they expire.
    Drain(StateArgs),
    /// Retire a domain now (null MX, mail refused).
    Retire(StateArgs),
    /// Mark a domain listed, as a confirmed blocklist listing would (the policy reacts).
    MarkListed {
        /// Domain name.
        name: String,
        /// The list to record (default: operator).
        #[arg(long)]
        list: Option<String>,
        /// Why (audit log and the listing's reason).
        #[arg(long)]
        reason: String,
    },
    /// Clear a domain's listing.
    ClearListing(StateArgs),
    /// Delete a retired domain without live mailboxes or recent mail.
    Delete(StateArgs),
    /// Check a domain on every blocklist now.
    Check {
        /// Domain name.
        name: String,
    },
    /// Counters of one domain.
    Stats {
        /// Domain name.
        name: String,
    },
    /// The rotation policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Audit events, oldest first.
    Audit {
        /// Only events with an id greater than this.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Events at most (1..=1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Args)]
struct StateArgs {
    /// Domain name.
    name: String,
    /// Why (audit log).
    #[arg(long, default_value = "from the command line")]
    reason: String,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the rotation policy in force.
    Get,
    /// Change fields of the policy: `key=value` pairs (`none` clears an optional limit).
    Set {
        /// e.g. active_target=3 drain_secs=172800 messages_max=none
        #[arg(required = true)]
        fields: Vec<String>,
    },
}

/// Runs the subcommand, printing the result on stdout.
pub fn run(args: DomainsArgs) -> anyhow::Result<()> {
    let client = Client::new(&admin_url(args.admin)?);
    let out = Output { json: args.json };
    match args.command {
        DomainsCommand::List { state } => {
            let query = state
                .map(|s| format!("?state={}", encode(&s)))
                .unwrap_or_default();
            let reply = client.send("GET", &format!("/admin/v1/domains{query}"), None)?;
            out.print(&reply, print_table);
        }
        DomainsCommand::Add {
            names,
            active,
            reason,
        } => {
            let state = if active { "active" } else { "pending" };
            let body = json!({ "domains": names, "state": state, "reason": reason });
            let reply = client.send("POST", "/admin/v1/domains", Some(body))?;
            out.print(&reply, |r| {
                for r in r["results"].as_array().into_iter().flatten() {
                    let what = if r["added"] == json!(true) {
                        "added"
                    } else {
                        "exists"
                    };
                    println!("{}\t{what}", text(&r["name"]));
                }
            });
        }
        DomainsCommand::Activate(a) => out.print(&client.set_state(&a, "active")?, print_state),
        DomainsCommand::Drain(a) => out.print(&client.set_state(&a, "draining")?, print_state),
        DomainsCommand::Retire(a) => out.print(&client.set_state(&a, "retired")?, print_state),
        DomainsCommand::MarkListed { name, list, reason } => {
            let body = json!({ "list": list, "reason": reason });
            let path = format!("/admin/v1/domains/{}/listing", encode(&name));
            out.print(&client.send("PUT", &path, Some(body))?, print_state);
        }
        DomainsCommand::ClearListing(a) => {
            let path = format!(
                "/admin/v1/domains/{}/listing?reason={}",
                encode(&a.name),
                encode(&a.reason)
            );
            out.print(&client.send("DELETE", &path, None)?, print_state);
        }
        DomainsCommand::Delete(a) => {
            let path = format!(
                "/admin/v1/domains/{}?reason={}",
                encode(&a.name),
                encode(&a.reason)
            );
            client.send("DELETE", &path, None)?;
            let reply = json!({ "name": a.name, "deleted": true });
            out.print(&reply, |r| println!("{}\tdeleted", text(&r["name"])));
        }
        DomainsCommand::Check { name } => {
            let reply = client.send(
                "POST",
                "/admin/v1/blocklists/check",
                Some(json!({ "domain": name })),
            )?;
            out.print(&reply, print_check);
        }
        DomainsCommand::Stats { name } => {
            let path = format!("/admin/v1/domains/{}/stats", encode(&name));
            out.print(&client.send("GET", &path, None)?, print_fields);
        }
        DomainsCommand::Policy { command } => {
            let policy = client.send("GET", "/admin/v1/policy", None)?;
            let reply = match command {
                PolicyCommand::Get => policy,
                PolicyCommand::Set { fields } => {
                    let changed = patch_policy(policy, &fields)?;
                    client.send("PUT", "/admin/v1/policy", Some(changed))?
                }
            };
            out.print(&reply, print_fields);
        }
        DomainsCommand::Audit { after, limit } => {
            let path = format!("/admin/v1/audit?after={after}&limit={limit}");
            out.print(&client.send("GET", &path, None)?, print_audit);
        }
    }
    Ok(())
}

/// The admin URL from the flag, else the environment, else the default; checked.
pub(crate) fn admin_url(flag: Option<String>) -> anyhow::Result<String> {
    let url = flag
        .or_else(|| std::env::var(ADMIN_URL_ENV).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| ADMIN_URL_DEFAULT.to_owned());
    check_url(&url)?;
    Ok(url.trim_end_matches('/').to_owned())
}

/// Refuses a URL this plain-HTTP client cannot use, saying what to write instead.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    match url.split_once("://") {
        Some(("http", rest)) if !rest.is_empty() => Ok(()),
        Some(("https", _)) => bail!(
            "URL `{url}`: this client speaks plain HTTP only; keep the admin listener on \
             a private address or reach it through an SSH tunnel"
        ),
        Some((scheme, _)) => bail!("URL `{url}`: unsupported scheme `{scheme}`; use http://"),
        None => bail!("URL `{url}` has no scheme; write http://{url}"),
    }
}

/// How results are printed.
pub(crate) struct Output {
    /// Print JSON instead of the table.
    pub(crate) json: bool,
}

impl Output {
    /// The JSON answer as is with `--json`, else the command's own table.
    pub(crate) fn print(&self, reply: &Value, table: impl FnOnce(&Value)) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(reply).unwrap_or_else(|_| reply.to_string())
            );
        } else {
            table(reply);
        }
    }
}

/// A JSON value as table text: strings without quotes, null as `-`.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn print_table(reply: &Value) {
    println!("NAME\tSTATE\tLISTED\tMESSAGES\tMAILBOXES\tLAST MESSAGE");
    for d in reply["domains"].as_array().into_iter().flatten() {
        let last = d["last_message_at"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |s| rfc3339(s.saturating_mul(1000)));
        println!(
            "{}\t{}\t{}\t{}\t{}\t{last}",
            text(&d["name"]),
            text(&d["state"]),
            text(&d["listing"]["list"]),
            d["messages"],
            d["mailboxes"]
        );
    }
}

/// One domain after a change: name, state and listing.
fn print_state(d: &Value) {
    println!(
        "{}\t{}\t{}",
        text(&d["name"]),
        text(&d["state"]),
        text(&d["listing"]["list"])
    );
}

/// An object's fields, one `key<TAB>value` line each.
fn print_fields(v: &Value) {
    for (k, v) in v.as_object().into_iter().flatten() {
        println!("{k}\t{}", text(v));
    }
}

fn print_check(reply: &Value) {
    for r in reply["results"].as_array().into_iter().flatten() {
        let o = &r["outcome"];
        let why = o["reason"].as_str().or(o["detail"].as_str()).unwrap_or("");
        println!("{}\t{}\t{why}", text(&r["list"]), text(&o["status"]));
    }
    let listing = &reply["listing"];
    if !listing.is_null() {
        println!(
            "confirmed listing: {} ({})",
            text(&listing["list"]),
            text(&listing["reason"])
        );
    }
}

fn print_audit(reply: &Value) {
    println!("ID\tAT\tDOMAIN\tACTION\tACTOR\tREASON");
    for e in reply["events"].as_array().into_iter().flatten() {
        let at = e["at"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |s| rfc3339(s.saturating_mul(1000)));
        let mut action = e["action"].clone();
        let kind = action
            .as_object_mut()
            .and_then(|o| o.remove("kind"))
            .map_or_else(|| "-".to_owned(), |k| text(&k));
        let detail = action
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!(" {k}={}", text(v)))
            .collect::<String>();
        println!(
            "{}\t{at}\t{}\t{kind}{detail}\t{}\t{}",
            e["id"],
            text(&e["domain"]),
            text(&e["actor"]),
            text(&e["reason"])
        );
    }
    if let Some(next) = reply["next_after"].as_u64() {
        println!("more: --after {next}");
    }
}

/// The policy with `key=value` fields replaced; a key the policy does not have is an error
/// (the API would refuse it too, less helpfully).
fn patch_policy(mut policy: Value, fields: &[String]) -> anyhow::Result<Value> {
    let obj = policy
        .as_object_mut()
        .context("the admin API answered a policy that is not an object")?;
    for field in fields {
        let Some((key, raw)) = field.split_once('=') else {
            bail!("`{field}`: write key=value");
        };
        if !obj.contains_key(key) {
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            bail!(
                "`{key}` is not a policy field; the fields are {}",
                keys.join(", ")
            );
        }
        let value = match raw {
            "none" | "null" => Value::Null,
            _ => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
        };
        obj.insert(key.to_owned(), value);
    }
    Ok(policy)
}

/// A blocking admin API client with the token from the environment.
pub(crate) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the admin API at `base`.
    pub(crate) fn new(base: &str) -> Self {
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

    /// Moves a domain to `state`.
    fn set_state(&self, a: &StateArgs, state: &str) -> anyhow::Result<Value> {
        let body = json!({ "state": state, "reason": a.reason });
        let path = format!("/admin/v1/domains/{}/state", encode(&a.name));
        self.send("PUT", &path, Some(body))
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the problem detail.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
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
            let hint = if status.as_u16() == 401 {
                " (set TEMPMX_ADMIN_TOKEN to the appliance's admin token)"
            } else {
                ""
            };
            bail!("{method} {path}: {status}: {detail}{hint}");
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
