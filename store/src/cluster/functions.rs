//! Fleet mode's Redis functions (`tempmx.lua`, `share.lua`) and how they reach every
//! primary.
//!
//! Every library and function name ends in `_<version>`, the first 12 hex digits of the
//! SHA-256 of both libraries' code. Nodes of different builds therefore call their own
//! functions side by side: a node restarted on an older build during a rolling upgrade
//! loads its own library instead of replacing the newer one under the nodes that call it
//! (a `FUNCTION LOAD REPLACE` of one shared name did that, and their writes got 451 until
//! they restarted too). An older build's library stays loaded until an operator deletes
//! it (`FUNCTION DELETE`); it is a few KiB.
//!
//! Functions live on each primary and are replicated to its replicas, but slots moved to
//! a primary added later (or a `FUNCTION FLUSH`) leave them behind there. A call answered
//! "Function not found" is an error like any other (the write is answered 451, nothing
//! acknowledged) and also wakes [`keep_loaded`], which loads both libraries on every
//! primary again, at most once per [`RELOAD_INTERVAL_MIN`].

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::cluster_async::ClusterConnection;

use super::stats::Health;

const TEMPMX: &str = include_str!("tempmx.lua");
const SHARE: &str = include_str!("share.lua");

/// Shortest time between two reloads of the libraries after a function went missing.
pub(crate) const RELOAD_INTERVAL_MIN: Duration = Duration::from_secs(1);

/// A fleet-mode function, by what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Function {
    /// Stores a record and its index entry (`tempmx.lua`).
    Put,
    /// Registers a mailbox if absent.
    Create,
    /// Moves a mailbox's expiry later.
    Extend,
    /// Deletes a mailbox with its records.
    Drop,
    /// Deletes one record.
    Remove,
    /// Stores a shared part once.
    Part,
    /// Takes or renews the rotation lease.
    Lease,
    /// Gives the rotation lease up.
    LeaseRelease,
    /// The fenced domain-pool write.
    PoolWrite,
    /// One greylisting step (`share.lua`).
    Grey,
    /// One rate-limit check.
    Rate,
    /// Adds to a domain's message count.
    Count,
    /// Counts a domain's live mailboxes.
    Mailboxes,
}

impl Function {
    const ALL: [Function; 13] = [
        Function::Put,
        Function::Create,
        Function::Extend,
        Function::Drop,
        Function::Remove,
        Function::Part,
        Function::Lease,
        Function::LeaseRelease,
        Function::PoolWrite,
        Function::Grey,
        Function::Rate,
        Function::Count,
        Function::Mailboxes,
    ];

    /// The name the Lua code registers it under, before the version.
    fn base(self) -> &'static str {
        match self {
            Function::Put => "tempmx_put",
            Function::Create => "tempmx_create",
            Function::Extend => "tempmx_extend",
            Function::Drop => "tempmx_drop",
            Function::Remove => "tempmx_remove",
            Function::Part => "tempmx_part",
            Function::Lease => "tempmx_lease",
            Function::LeaseRelease => "tempmx_lease_release",
            Function::PoolWrite => "tempmx_pool_write",
            Function::Grey => "tempmx_grey",
            Function::Rate => "tempmx_rate",
            Function::Count => "tempmx_count",
            Function::Mailboxes => "tempmx_mailboxes",
        }
    }

    /// Its name in the cluster: the base name and this build's version.
    pub(crate) fn name(self) -> &'static str {
        &LIBRARIES.names[self as usize]
    }
}

/// An `FCALL` of `f`, to which the caller adds the key count, keys and arguments.
pub(crate) fn fcall(f: Function) -> redis::Cmd {
    let mut cmd = redis::cmd("FCALL");
    cmd.arg(f.name());
    cmd
}

/// This build's libraries as loaded, and its function names.
struct Libraries {
    version: String,
    codes: [String; 2],
    names: Vec<String>,
}

static LIBRARIES: LazyLock<Libraries> = LazyLock::new(|| {
    let digest = ring::digest::digest(&ring::digest::SHA256, [TEMPMX, SHARE].concat().as_bytes());
    let version = hex::encode(&digest.as_ref()[..6]);
    let code = |name: &str, lua: &str| {
        // The files name their functions `<base> .. V`, so the prelude sets the suffix.
        format!("#!lua name={name}_{version}\nlocal V = '_{version}'\n{lua}")
    };
    Libraries {
        codes: [code("tempmx", TEMPMX), code("tempmx_share", SHARE)],
        names: Function::ALL
            .iter()
            .map(|f| format!("{}_{version}", f.base()))
            .collect(),
        version,
    }
});

/// This build's library version (the suffix of every name).
pub(crate) fn version() -> &'static str {
    &LIBRARIES.version
}

/// Loads both libraries on every primary (`FUNCTION LOAD REPLACE`: loading the same code
/// again changes nothing).
pub(crate) async fn load(conn: &mut ClusterConnection) -> redis::RedisResult<()> {
    for code in &LIBRARIES.codes {
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(code)
            .query_async::<()>(conn)
            .await?;
    }
    Ok(())
}

/// Whether the library of a build from before versioned names (`tempmx`) is loaded: such
/// a node may still be running, and it reads compressed values as damaged.
pub(crate) async fn unversioned_loaded(conn: &mut ClusterConnection) -> redis::RedisResult<bool> {
    let libraries: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("tempmx")
        .query_async(conn)
        .await?;
    Ok(!libraries.is_empty())
}

/// Whether `e` is Redis's answer to a call of a function it does not have.
pub(crate) fn is_missing(e: &redis::RedisError) -> bool {
    // A pipeline's error carries no detail to match, only its text ("ERR Function not found").
    e.to_string().contains("Function not found")
}

/// Loads the libraries again on every primary each time `health` saw a call of a missing
/// function, at most once per [`RELOAD_INTERVAL_MIN`]; runs until its runtime stops.
pub(crate) async fn keep_loaded(mut conn: ClusterConnection, health: Arc<Health>) {
    loop {
        health.function_missing().await;
        match load(&mut conn).await {
            Ok(()) => tracing::warn!(
                version = version(),
                "a primary lacked the fleet functions; loaded them again on every primary"
            ),
            Err(e) => tracing::error!(error = %e, "loading the fleet functions again failed"),
        }
        tokio::time::sleep(RELOAD_INTERVAL_MIN).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: every function the code calls is one the libraries register, under this
    // build's suffix, and the libraries are named with the same suffix.
    #[test]
    fn every_called_name_is_registered_with_the_version() {
        let v = version();
        assert_eq!(v.len(), 12);
        for f in Function::ALL {
            let lua = if (f as usize) < Function::Grey as usize {
                TEMPMX
            } else {
                SHARE
            };
            let registered = format!("redis.register_function('{}' .. V,", f.base());
            assert!(lua.contains(&registered), "{registered} missing");
            assert_eq!(f.name(), format!("{}_{v}", f.base()));
        }
        let registrations = [TEMPMX, SHARE]
            .iter()
            .map(|l| l.matches("redis.register_function(").count())
            .sum::<usize>();
        assert_eq!(registrations, Function::ALL.len());
        assert!(LIBRARIES.codes[0].starts_with(&format!("#!lua name=tempmx_{v}\n")));
        assert!(LIBRARIES.codes[1].starts_with(&format!("#!lua name=tempmx_share_{v}\n")));
        for code in &LIBRARIES.codes {
            assert_eq!(code.lines().filter(|l| l.starts_with("#!lua")).count(), 1);
        }
    }

    // Goal: a missing function is told apart from other server errors.
    #[test]
    fn missing_function_is_recognised() {
        let missing = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "An error was signalled by the server",
            "Function not found".to_owned(),
        ));
        assert!(is_missing(&missing));
        let other = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "An error was signalled by the server",
            "TAKEN".to_owned(),
        ));
        assert!(!is_missing(&other));
    }
}
