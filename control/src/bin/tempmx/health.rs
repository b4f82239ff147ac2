//! `tempmx health`: one GET of `/healthz`, for container health checks (the image has no
//! curl). Exit status 0 on a 200 answer, 1 otherwise, with the reason on stderr.

use std::time::Duration;

use anyhow::bail;

/// Ask a running appliance whether it is healthy.
#[derive(clap::Args)]
pub struct HealthArgs {
    /// The health URL (the public listener's /healthz).
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

/// Runs the check.
pub fn run(args: &HealthArgs) -> anyhow::Result<()> {
    crate::domains::check_url(&args.url)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(args.timeout_secs)))
        .build()
        .into();
    let status = agent.get(&args.url).call()?.status();
    if !status.is_success() {
        bail!("{}: {status}", args.url);
    }
    println!("ok");
    Ok(())
}
