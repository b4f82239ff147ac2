//! DNS over TCP: length-prefixed messages (RFC 1035 §4.2.2, RFC 7766),
//! at most `tcp_connections_max` connections, each closed when idle for
//! `tcp_idle_timeout_ms` or after `tcp_queries_per_connection_max` queries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;
use tracing::debug;

use crate::axfr;
use crate::counters::Counters;
use crate::respond::{self, TCP_MESSAGE_MAX, Transport};
use crate::server::Shared;

/// Accepts connections until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    c: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(shared.config.tcp_connections_max));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                debug!(error = %e, "dns tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            // At the limit the connection is closed at once (dropped here).
            c.tcp_rejected();
            continue;
        };
        c.tcp_accepted();
        let (shared, c, stop) = (Arc::clone(&shared), Arc::clone(&c), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, peer, &shared, &c, stop).await;
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    c: &Counters,
    mut stop: watch::Receiver<bool>,
) {
    let idle = Duration::from_millis(shared.config.tcp_idle_timeout_ms);
    // 64 KiB per connection: 16 MiB at the default 256 connections.
    let mut buf = vec![0u8; TCP_MESSAGE_MAX];
    let mut out = Vec::with_capacity(1024);
    for _ in 0..shared.config.tcp_queries_per_connection_max {
        let len = tokio::select! {
            _ = stop.changed() => return,
            r = timeout(idle, stream.read_u16()) => match r {
                Ok(Ok(len)) if len > 0 => usize::from(len),
                _ => return,
            },
        };
        if !matches!(
            timeout(idle, stream.read_exact(&mut buf[..len])).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let packet = &buf[..len];
        let table = shared.table.load();
        let replies = match axfr::transfer_request(packet) {
            Some(req) => axfr::respond(&table, &req, peer.ip(), &shared.config.axfr_allow, c),
            None if respond::handle(&table, packet, &mut out, Transport::Tcp, c) => {
                vec![std::mem::take(&mut out)]
            }
            None => Vec::new(),
        };
        for reply in &replies {
            if write_framed(&mut stream, reply, idle).await.is_err() {
                return;
            }
        }
    }
}

async fn write_framed(stream: &mut TcpStream, msg: &[u8], idle: Duration) -> Result<(), ()> {
    let len = u16::try_from(msg.len()).map_err(|_| ())?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    match timeout(idle, stream.write_all(&framed)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
