//! A throwaway Redis Cluster on loopback for tests and the local demo: six Debian
//! `redis-server` processes (3 primaries + 3 replicas) joined by `redis-cli --cluster
//! create`.
//!
//! Ports: each cluster takes a block of six client ports in 10000..=19999, so the bus ports
//! (+10000) stay in 20000..=29999; both ranges are below Linux's ephemeral range (32768+)
//! and below 55536. The block is picked from the process id and probed free (client and bus
//! port both bound once), so test binaries running in parallel do not collide. Processes
//! are stopped by PID when the [`TestCluster`] is dropped, and their data directory (a
//! temporary directory) removed; nothing else is touched.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Nodes in a test cluster: 3 primaries, each with one replica.
pub const NODES: usize = 6;
/// Lowest client port a test cluster uses.
const PORT_MIN: u16 = 10_000;
/// Blocks of ten ports between `PORT_MIN` and 19999.
const BLOCKS: u32 = 1_000;
/// Offset of the cluster bus port from the client port (fixed by Redis).
const BUS_OFFSET: u16 = 10_000;
/// How long the cluster may take to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);
/// Blocks tried before giving up on finding free ports.
const PROBES_MAX: u32 = 200;

/// Clusters started by this process so far, so two in one process take different blocks.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// Why a test cluster could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestClusterError {
    /// A process could not be spawned or a file written.
    #[error("test cluster i/o: {0}")]
    Io(#[from] io::Error),
    /// No block of free ports was found.
    #[error("no free block of {NODES} client and bus ports below 30000")]
    NoPorts,
    /// `redis-cli --cluster create` failed.
    #[error("redis-cli --cluster create failed: {0}")]
    Create(String),
    /// The cluster did not reach `cluster_state:ok` on every node in time.
    #[error("cluster did not form within {FORM_TIMEOUT:?}: {0}")]
    Timeout(String),
}

/// A running six-node cluster; dropping it kills its processes and removes their data.
pub struct TestCluster {
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
    dir: PathBuf,
}

impl TestCluster {
    /// Starts six nodes, creates the cluster with one replica per primary, and waits until
    /// every node reports `cluster_state:ok` and every replica's link to its primary is up.
    pub fn start() -> Result<Self, TestClusterError> {
        let base = free_block()?;
        let dir =
            std::env::temp_dir().join(format!("tempmx-cluster-{}-{}", std::process::id(), base));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = Self {
            ports: (0..NODES as u16).map(|i| base + i).collect(),
            children: Vec::with_capacity(NODES),
            dir,
        };
        for i in 0..NODES {
            let child = cluster.spawn_node(i)?;
            cluster.children.push(Some(child));
        }
        cluster.wait_until(|c| c.ports.iter().all(|&p| ping(p)), "nodes answering PING")?;
        cluster.create()?;
        cluster.wait_until(TestCluster::formed, "cluster_state:ok and replicas in sync")?;
        Ok(cluster)
    }

    /// The client ports, in the order the nodes were started.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Seed URLs (`redis://127.0.0.1:PORT`) of every node.
    pub fn seeds(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The PID of node `i`, if it is still running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children.get(i)?.as_ref().map(Child::id)
    }

    /// SIGKILLs node `i` (for failover tests) and reaps it.
    pub fn kill(&mut self, i: usize) -> io::Result<()> {
        if let Some(mut child) = self.children.get_mut(i).and_then(Option::take) {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts node `i` again after [`kill`](Self::kill), on its port and with its
    /// `nodes.conf`, so it rejoins the cluster (as a replica if it was failed over).
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        if self.children.get(i).is_some_and(Option::is_none) {
            let child = self.spawn_node(i)?;
            self.children[i] = Some(child);
        }
        Ok(())
    }

    /// Runs `redis-cli -p PORT args...` against node `i` and returns its standard output.
    pub fn cli(&self, i: usize, args: &[&str]) -> io::Result<String> {
        cli(self.ports[i], args)
    }

    /// The index of the node that is currently primary for `key`'s slot, if any node says.
    pub fn primary_of(&self, key: &str) -> Option<usize> {
        let slot: u16 = self
            .cli_any(&["cluster", "keyslot", key])?
            .trim()
            .parse()
            .ok()?;
        let nodes = self.cli_any(&["cluster", "nodes"])?;
        nodes.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let primary = f.get(2)?.contains("master") && !f.get(2)?.contains("fail");
            let owns = f.iter().skip(8).any(|r| slot_range_has(r, slot));
            if !(primary && owns) {
                return None;
            }
            let port: u16 = f.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
            self.ports.iter().position(|&p| p == port)
        })
    }

    /// Waits (bounded) until every running node reports `cluster_state:ok` again, e.g.
    /// after a failover.
    pub fn wait_ok(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.running().all(state_ok) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Output of `cli` from the first running node that answers.
    fn cli_any(&self, args: &[&str]) -> Option<String> {
        self.running().find_map(|p| cli(p, args).ok())
    }

    /// Ports of the nodes still running.
    fn running(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports
            .iter()
            .zip(&self.children)
            .filter(|(_, c)| c.is_some())
            .map(|(&p, _)| p)
    }

    fn spawn_node(&self, i: usize) -> io::Result<Child> {
        let port = self.ports[i];
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir)?;
        Command::new("redis-server")
            .args(node_args(port, &dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    fn create(&self) -> Result<(), TestClusterError> {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for p in &self.ports {
            cmd.arg(format!("127.0.0.1:{p}"));
        }
        let out = cmd
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(TestClusterError::Create(
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            ));
        }
        Ok(())
    }

    /// Every node reports state ok with all slots assigned and six known nodes, and every
    /// replica's link to its primary is up.
    fn formed(&self) -> bool {
        self.ports.iter().all(|&p| {
            let Ok(info) = cli(p, &["cluster", "info"]) else {
                return false;
            };
            let Ok(repl) = cli(p, &["info", "replication"]) else {
                return false;
            };
            info.contains("cluster_state:ok")
                && info.contains("cluster_slots_assigned:16384")
                && info.contains(&format!("cluster_known_nodes:{NODES}"))
                && (repl.contains("role:master") || repl.contains("master_link_status:up"))
        }) && self
            .ports
            .iter()
            .filter_map(|&p| cli(p, &["info", "replication"]).ok())
            .filter(|r| r.contains("role:slave"))
            .count()
            == NODES / 2
    }

    fn wait_until(&self, ready: fn(&Self) -> bool, what: &str) -> Result<(), TestClusterError> {
        let end = Instant::now() + FORM_TIMEOUT;
        while Instant::now() < end {
            if ready(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(TestClusterError::Timeout(what.to_owned()))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            // Killing by the PID we spawned; an error means it already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-server` arguments for one cluster node with its files in `dir`. A short node
/// timeout makes failover tests quick; no persistence, since the directory is thrown away.
fn node_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "1000",
        "--appendonly",
        "no",
        "--save",
        "",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
        "--dir",
        &dir.to_string_lossy(),
        "--logfile",
        "redis.log",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The first block of six client ports (and their bus ports) that can all be bound now.
fn free_block() -> Result<u16, TestClusterError> {
    let seed = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(STARTED.fetch_add(1, Ordering::Relaxed) * 13);
    for probe in 0..PROBES_MAX {
        let block = (seed.wrapping_add(probe * 31)) % BLOCKS;
        let base = PORT_MIN + (block * 10) as u16;
        let ports = (0..NODES as u16).flat_map(|i| [base + i, base + i + BUS_OFFSET]);
        let free = ports
            .map(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)))
            .collect::<Result<Vec<_>, _>>()
            .is_ok();
        if free {
            return Ok(base);
        }
    }
    Err(TestClusterError::NoPorts)
}

fn cli(port: u16, args: &[&str]) -> io::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ping(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        && cli(port, &["ping"]).is_ok_and(|o| o.trim() == "PONG")
}

fn state_ok(port: u16) -> bool {
    cli(port, &["cluster", "info"]).is_ok_and(|o| o.contains("cluster_state:ok"))
}

/// Whether a `CLUSTER NODES` slot field (`5461` or `0-5460`) holds `slot`.
fn slot_range_has(field: &str, slot: u16) -> bool {
    let mut it = field.splitn(2, '-').map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) => (lo..=hi).contains(&slot),
        (Some(Ok(one)), None) => one == slot,
        _ => false,
    }
}
