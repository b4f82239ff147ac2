//! `tempmx fleet status`: the fleet's nodes through the admin API (`GET /admin/v1/fleet`),
//! as a table or, with `--json`, the API's JSON; URL and token as for `tempmx domains`.

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::domains::{Client, Output, admin_url, text};

/// Look at the fleet through the admin API.
#[derive(Args)]
pub struct FleetArgs {
    /// Base URL of the admin API [env: TEMPMX_ADMIN_URL; default: http://127.0.0.1:8081].
    #[arg(long, global = true)]
    admin: Option<String>,
    /// Print the admin API's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Every node with its state (up or gone), version, last heartbeat and, for the node
    /// holding the rotation lease, `lease`.
    Status,
}

/// Runs the subcommand, printing the result on stdout.
pub fn run(args: FleetArgs) -> anyhow::Result<()> {
    let client = Client::new(&admin_url(args.admin)?);
    let out = Output { json: args.json };
    match args.command {
        FleetCommand::Status => {
            let reply = client.send("GET", "/admin/v1/fleet", None)?;
            out.print(&reply, print_status);
        }
    }
    Ok(())
}

/// `node  state  version  last_seen  [lease]`, this node marked with `*`.
fn print_status(reply: &Value) {
    let me = reply["node"].as_str().unwrap_or_default();
    let holder = reply["lease_holder"].as_str();
    for n in reply["nodes"].as_array().into_iter().flatten() {
        let name = text(&n["name"]);
        let mark = if name == me { "*" } else { "" };
        let lease = if holder == Some(name.as_str()) {
            "\tlease"
        } else {
            ""
        };
        println!(
            "{name}{mark}\t{}\t{}\t{}{lease}",
            text(&n["state"]),
            text(&n["version"]),
            text(&n["last_seen"])
        );
    }
}
