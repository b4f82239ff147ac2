//! Guerrilla Mail sessions: a `sid_token` (also sent as the `PHPSESSID` cookie) names the
//! mailbox the session holds now. Single node: memory only, bounded, and swept of sessions
//! without a live mailbox when full. Fleet mode: one small hash per session in the
//! cluster (`tmx:{gs:<sid>}:s`), so a session started on one node works on every node;
//! each expires `api.ttl_secs_max` after its last change (the per-IP creation limit
//! bounds how fast they are made).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::RngCore;
use tempmx_store::Mailbox;
use tempmx_store::cluster::{Cluster, tagged};

use crate::mailboxes::now_ms;

/// Characters of a `sid_token` (PHP session ids are 26).
pub const SID_CHARS: usize = 26;

/// One session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The mailbox the session reads, once it has one.
    pub address: Option<Mailbox>,
    /// Whether this session registered `address` (so `forget_me` may release it).
    pub owns: bool,
    /// When the session took `address` (seconds since the epoch).
    pub since_secs: u64,
}

/// All sessions: at most `max` in memory, or the fleet's.
pub struct Sessions {
    max: usize,
    map: Mutex<HashMap<String, Session>>,
    /// Fleet mode: the cluster holding the sessions, and how long one lives.
    fleet: Option<(Arc<Cluster>, u64)>,
}

/// Why a session could not be started or kept.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The table is full even after dropping the sessions without a live mailbox.
    #[error("at most {0} Guerrilla Mail sessions")]
    Full(usize),
    /// The fleet's cluster did not take the session.
    #[error("session not saved: {0}")]
    Unsaved(String),
}

/// The cluster key of session `sid`.
fn key(sid: &str) -> String {
    tagged(&format!("gs:{sid}"), "s")
}

/// A session from its cluster hash; `None` when absent or unreadable.
fn from_fields(f: &HashMap<String, Vec<u8>>) -> Option<Session> {
    let text = |k: &str| std::str::from_utf8(f.get(k)?).ok();
    Some(Session {
        address: text("a")
            .filter(|a| !a.is_empty())
            .and_then(|a| Mailbox::parse(a).ok()),
        owns: text("o")? == "1",
        since_secs: text("t")?.parse().ok()?,
    })
}

fn fields(s: &Session) -> Vec<(String, Vec<u8>)> {
    let a = s.address.as_ref().map(Mailbox::as_str).unwrap_or_default();
    vec![
        ("a".to_owned(), a.as_bytes().to_vec()),
        (
            "o".to_owned(),
            if s.owns { b"1".to_vec() } else { b"0".to_vec() },
        ),
        ("t".to_owned(), s.since_secs.to_string().into_bytes()),
    ]
}

fn new_sid() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; SID_CHARS];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

impl Sessions {
    /// A table of at most `max` sessions.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            map: Mutex::default(),
            fleet: None,
        }
    }

    /// Sessions kept in the fleet's `cluster`, each living `ttl_secs` after its last change.
    pub fn fleet(cluster: Arc<Cluster>, ttl_secs: u64) -> Self {
        Self {
            max: 0,
            map: Mutex::default(),
            fleet: Some((cluster, ttl_secs)),
        }
    }

    /// The session `sid` names (`None` too when the cluster cannot be read; logged).
    pub async fn get(&self, sid: &str) -> Option<Session> {
        let Some((cluster, _)) = &self.fleet else {
            return self.map.lock().get(sid).cloned();
        };
        if sid.len() != SID_CHARS {
            return None;
        }
        match cluster.hash_all(key(sid)).await {
            Ok(f) => from_fields(&f),
            Err(e) => {
                tracing::warn!(error = %e, "guerrilla session lookup failed");
                None
            }
        }
    }

    /// Starts a session holding `session`; returns its sid. When the memory table is
    /// full, sessions without a mailbox or whose mailbox `live` rejects are dropped first.
    pub async fn start(
        &self,
        session: Session,
        live: impl Fn(&Mailbox) -> bool,
    ) -> Result<String, SessionError> {
        let sid = new_sid();
        if self.fleet.is_some() {
            self.save(&sid, &session).await?;
            return Ok(sid);
        }
        let mut map = self.map.lock();
        if map.len() >= self.max {
            map.retain(|_, s| s.address.as_ref().is_some_and(&live));
            if map.len() >= self.max {
                return Err(SessionError::Full(self.max));
            }
        }
        map.insert(sid.clone(), session);
        Ok(sid)
    }

    /// Replaces what session `sid` holds.
    pub async fn set(&self, sid: &str, session: Session) -> Result<(), SessionError> {
        if self.fleet.is_some() {
            return self.save(sid, &session).await;
        }
        if let Some(s) = self.map.lock().get_mut(sid) {
            *s = session;
        }
        Ok(())
    }

    async fn save(&self, sid: &str, session: &Session) -> Result<(), SessionError> {
        let Some((cluster, ttl)) = &self.fleet else {
            return Ok(());
        };
        cluster
            .hash_put(key(sid), fields(session), Vec::new(), now_ms() + ttl * 1000)
            .await
            .map_err(|e| SessionError::Unsaved(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: sids are PHP-session shaped and distinct; at the bound a new session is
    // refused unless sessions with no or a dead mailbox can be dropped. Method: a table
    // of 2.
    #[tokio::test]
    async fn bounded_sessions() {
        let s = Sessions::new(2);
        let a = Mailbox::parse("a@pool.test").expect("mailbox");
        let held = |m: Option<&Mailbox>| Session {
            address: m.cloned(),
            owns: true,
            since_secs: 0,
        };
        let one = s.start(held(Some(&a)), |_| true).await.expect("first");
        assert_eq!(one.len(), SID_CHARS);
        let two = s.start(held(Some(&a)), |_| true).await.expect("second");
        assert_ne!(one, two);
        assert!(matches!(
            s.start(held(None), |_| true).await,
            Err(SessionError::Full(2))
        ));
        assert_eq!(s.get(&one).await.and_then(|x| x.address), Some(a.clone()));
        let three = s
            .start(held(None), |_| false)
            .await
            .expect("room after sweep");
        assert!(s.get(&one).await.is_none() && s.get(&three).await.is_some());
        s.set(&three, held(Some(&a))).await.expect("set");
        assert_eq!(s.get(&three).await.and_then(|x| x.address), Some(a.clone()));
        // The cluster form round-trips through its fields.
        let kept = held(Some(&a));
        let f: HashMap<String, Vec<u8>> = fields(&kept).into_iter().collect();
        assert_eq!(from_fields(&f), Some(kept));
        let none = held(None);
        let f: HashMap<String, Vec<u8>> = fields(&none).into_iter().collect();
        assert_eq!(from_fields(&f), Some(none));
    }
}
