//! Guerrilla Mail sessions: a `sid_token` (also sent as the `PHPSESSID` cookie) names the
//! mailbox the session holds now. Memory only, bounded, and swept of sessions without a
//! live mailbox when full.

use std::collections::HashMap;

use parking_lot::Mutex;
use rand::RngCore;
use tempmx_store::Mailbox;

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

/// All sessions, at most `max`.
pub struct Sessions {
    max: usize,
    map: Mutex<HashMap<String, Session>>,
}

/// The table is full even after dropping the sessions without a live mailbox.
#[derive(Debug, thiserror::Error)]
#[error("at most {0} Guerrilla Mail sessions")]
pub struct Full(pub usize);

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
        }
    }

    /// The session `sid` names.
    pub fn get(&self, sid: &str) -> Option<Session> {
        self.map.lock().get(sid).cloned()
    }

    /// Starts a session holding `session`; returns its sid. When full, sessions without
    /// a mailbox or whose mailbox `live` rejects are dropped first.
    pub fn start(&self, session: Session, live: impl Fn(&Mailbox) -> bool) -> Result<String, Full> {
        let mut map = self.map.lock();
        if map.len() >= self.max {
            map.retain(|_, s| s.address.as_ref().is_some_and(&live));
            if map.len() >= self.max {
                return Err(Full(self.max));
            }
        }
        let sid = new_sid();
        map.insert(sid.clone(), session);
        Ok(sid)
    }

    /// Replaces what session `sid` holds.
    pub fn set(&self, sid: &str, session: Session) {
        if let Some(s) = self.map.lock().get_mut(sid) {
            *s = session;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: sids are PHP-session shaped and distinct; at the bound a new session is
    // refused unless sessions with no or a dead mailbox can be dropped. Method: a table
    // of 2.
    #[test]
    fn bounded_sessions() {
        let s = Sessions::new(2);
        let a = Mailbox::parse("a@pool.test").expect("mailbox");
        let held = |m: Option<&Mailbox>| Session {
            address: m.cloned(),
            owns: true,
            since_secs: 0,
        };
        let one = s.start(held(Some(&a)), |_| true).expect("first");
        assert_eq!(one.len(), SID_CHARS);
        let two = s.start(held(Some(&a)), |_| true).expect("second");
        assert_ne!(one, two);
        assert!(matches!(s.start(held(None), |_| true), Err(Full(2))));
        assert_eq!(s.get(&one).and_then(|x| x.address), Some(a.clone()));
        let three = s.start(held(None), |_| false).expect("room after sweep");
        assert!(s.get(&one).is_none() && s.get(&three).is_some());
        s.set(&three, held(Some(&a)));
        assert_eq!(s.get(&three).and_then(|x| x.address), Some(a));
    }
}
