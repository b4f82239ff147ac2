//! The registry's append log, `<data_dir>/control/mailboxes.log`: a header line, then one
//! JSON line per creation or deletion; replayed at start-up and compacted (temp file,
//! fsync, rename, fsync of the directory) when it holds far more lines than live entries.
//! The log is generic over its line type ([`Kind`] names the file), so other control
//! state kept the same way (the mail.tm accounts) shares it.
//!
//! A log rather than a snapshot: mailboxes are created at request rate and the registry
//! holds up to `api.mailboxes_max` of them, so rewriting all of it per creation (or per
//! tick) would cost far more than appending one line. Each line goes out in one `write`
//! (a killed process loses nothing the kernel has); the control tick fsyncs, so a power
//! loss can lose at most the creations of the last tick. Expiry needs no line: replay
//! drops entries whose time has passed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::warn;

/// The registry log's file name inside the control state directory.
pub const FILE: &str = "mailboxes.log";
/// Version of the line layout; another value is refused at start-up.
const FORMAT: u32 = 1;
/// Longest line accepted: a 254-byte address, a 64-digit hash, two numbers and the keys
/// (a mail.tm account line, with its ~100-byte argon2 PHC string, fits too).
const LINE_BYTES_MAX: usize = 1024;
/// Lines allowed beyond twice the live entries before the log is compacted.
const COMPACT_SLACK: usize = 1024;

/// Which log: its file, its temp file for compaction, and its header key.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    /// File name inside the control state directory.
    pub file: &'static str,
    /// Temp file name used while compacting.
    pub temp: &'static str,
    /// The header line's only key (its value is the format version).
    pub header: &'static str,
}

/// The mailbox registry's log.
pub const MAILBOXES: Kind = Kind {
    file: FILE,
    temp: "mailboxes.log.tmp",
    header: "tempmx_mailboxes",
};

/// One line after the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Record {
    /// A mailbox was created (or an expired address was taken again).
    Add {
        /// Normalised address.
        address: String,
        /// SHA-256 of the token, hex.
        token_sha256: String,
        /// Expiry, ms since the Unix epoch.
        expires_at_ms: u64,
        /// The TTL asked for at creation (re-applied to the store after a restart).
        ttl_secs: u64,
    },
    /// A mailbox was deleted by its owner.
    Remove {
        /// Normalised address.
        address: String,
    },
}

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file is not a registry log this build can read.
    #[error(
        "{path} is corrupt at line {line}: {detail} (restore it from a backup, or remove it to forget what it holds: every mailbox or account, and its tokens)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0: the file as a whole).
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// An I/O operation failed.
    #[error("mailbox registry {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Most lines a log of a registry holding `entries_max` entries can have: compaction runs
/// once the lines pass twice the live entries plus the slack.
pub fn lines_max(entries_max: usize) -> usize {
    entries_max
        .saturating_mul(2)
        .saturating_add(COMPACT_SLACK + 1)
}

/// The open log of one data directory, of lines of type `R`.
pub struct Log<R> {
    kind: Kind,
    dir: PathBuf,
    /// Opened at the first append, so a first start leaves no file behind until needed.
    file: Option<File>,
    /// Lines after the header.
    records: usize,
    /// Lines written (or the file created) since the last fsync.
    unsynced: bool,
    lines: PhantomData<fn() -> R>,
}

impl<R: Serialize + DeserializeOwned> Log<R> {
    /// Reads `<dir>/<kind.file>` (absent: empty). Bytes after the last newline are a
    /// write torn by a crash: cut off with a warning. Anything else unreadable, or a file
    /// larger than `lines_max` lines could fill, is [`LogError::Corrupt`].
    pub fn open(dir: &Path, kind: Kind, lines_max: usize) -> Result<(Self, Vec<R>), LogError> {
        let path = dir.join(kind.file);
        let mut log = Self {
            kind,
            dir: dir.to_owned(),
            file: None,
            records: 0,
            unsynced: false,
            lines: PhantomData,
        };
        let corrupt = |line, detail: String| LogError::Corrupt {
            path: path.clone(),
            line,
            detail,
        };
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((log, Vec::new())),
            Err(source) => return Err(LogError::Io { path, source }),
        };
        // Checked before reading, so a runaway file is never loaded into memory.
        let bytes_max = lines_max
            .saturating_add(1)
            .saturating_mul(LINE_BYTES_MAX + 1);
        if len > bytes_max as u64 {
            return Err(corrupt(
                0,
                format!(
                    "{len} bytes, more than a log of this api.mailboxes_max holds \
                     ({bytes_max}); if the limit was lowered, keep the old one until its \
                     mailboxes have expired"
                ),
            ));
        }
        let bytes = std::fs::read(&path).map_err(|source| LogError::Io {
            path: path.clone(),
            source,
        })?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            warn!(
                bytes = bytes.len() - complete,
                file = kind.file,
                "control log ends in a torn write; cutting it off"
            );
            truncate(&path, complete)?;
        }
        let mut lines = bytes[..complete].split(|&b| b == b'\n');
        let records = match lines.next() {
            Some(header) if !header.is_empty() => {
                check_header(header, kind.header).map_err(|d| corrupt(1, d))?;
                parse_records(lines, &corrupt)?
            }
            _ => Vec::new(),
        };
        log.records = records.len();
        Ok((log, records))
    }

    /// Appends one line (not yet fsynced).
    pub fn append(&mut self, record: &R) -> Result<(), LogError> {
        let line = to_line(record);
        let path = self.dir.join(self.kind.file);
        let file = self.writer()?;
        file.write_all(&line)
            .map_err(|source| LogError::Io { path, source })?;
        self.records += 1;
        self.unsynced = true;
        Ok(())
    }

    /// Fsyncs what was appended since the last call.
    pub fn sync(&mut self) -> Result<(), LogError> {
        if !self.unsynced {
            return Ok(());
        }
        if let Some(f) = &self.file {
            let path = self.dir.join(self.kind.file);
            f.sync_data()
                .map_err(|source| LogError::Io { path, source })?;
        }
        sync_dir(&self.dir)?;
        self.unsynced = false;
        Ok(())
    }

    /// Whether the log holds much more than `live` entries need.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.records > live.saturating_mul(2).saturating_add(COMPACT_SLACK)
    }

    /// Replaces the log with `live` atomically; a crash leaves the old or the new file.
    pub fn compact(&mut self, live: &[R]) -> Result<(), LogError> {
        let temp = self.dir.join(self.kind.temp);
        let path = self.dir.join(self.kind.file);
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| LogError::Io { path: p, source }
        };
        let mut out = header_line(self.kind.header);
        live.iter().for_each(|r| out.extend(to_line(r)));
        let mut f = File::create(&temp).map_err(io(&temp))?;
        f.write_all(&out).map_err(io(&temp))?;
        f.sync_all().map_err(io(&temp))?;
        std::fs::rename(&temp, &path).map_err(io(&temp))?;
        sync_dir(&self.dir)?;
        self.file = None;
        self.records = live.len();
        self.unsynced = false;
        Ok(())
    }

    fn writer(&mut self) -> Result<&mut File, LogError> {
        if self.file.is_none() {
            let path = self.dir.join(self.kind.file);
            let io = |source| LogError::Io {
                path: path.clone(),
                source,
            };
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            if f.metadata().map_err(io)?.len() == 0 {
                f.write_all(&header_line(self.kind.header)).map_err(io)?;
                self.unsynced = true;
            }
            self.file = Some(f);
        }
        // Set just above when it was empty.
        self.file.as_mut().ok_or_else(|| LogError::Io {
            path: self.dir.join(self.kind.file),
            source: std::io::Error::other("log file not open"),
        })
    }
}

/// Checks the header line: `{"<key>": FORMAT}` and nothing else.
fn check_header(line: &[u8], key: &str) -> Result<(), String> {
    let h: std::collections::BTreeMap<String, u32> =
        serde_json::from_slice(line).map_err(|e| format!("bad header: {e}"))?;
    match (h.len(), h.get(key)) {
        (1, Some(&FORMAT)) => Ok(()),
        (1, Some(other)) => Err(format!("format {other} (this build reads {FORMAT})")),
        _ => Err(format!("bad header: expected only `{key}`")),
    }
}

fn parse_records<'a, R: DeserializeOwned>(
    lines: impl Iterator<Item = &'a [u8]>,
    corrupt: &impl Fn(usize, String) -> LogError,
) -> Result<Vec<R>, LogError> {
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let number = i + 2;
        if line.is_empty() {
            // The split after the final newline.
            continue;
        }
        if line.len() > LINE_BYTES_MAX {
            return Err(corrupt(
                number,
                format!("longer than {LINE_BYTES_MAX} bytes"),
            ));
        }
        let r: R = serde_json::from_slice(line).map_err(|e| corrupt(number, e.to_string()))?;
        out.push(r);
    }
    Ok(out)
}

fn header_line(key: &str) -> Vec<u8> {
    let mut v =
        serde_json::to_vec(&std::collections::BTreeMap::from([(key, FORMAT)])).unwrap_or_default();
    v.push(b'\n');
    v
}

fn to_line<R: Serialize>(record: &R) -> Vec<u8> {
    // Serialising strings and integers cannot fail.
    let mut v = serde_json::to_vec(record).unwrap_or_default();
    v.push(b'\n');
    v
}

fn truncate(path: &Path, len: usize) -> Result<(), LogError> {
    let io = |source| LogError::Io {
        path: path.to_owned(),
        source,
    };
    let f = OpenOptions::new().write(true).open(path).map_err(io)?;
    f.set_len(len as u64).map_err(io)?;
    f.sync_all().map_err(io)
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| LogError::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(address: &str, expires_at_ms: u64) -> Record {
        Record::Add {
            address: address.into(),
            token_sha256: "ab".repeat(32),
            expires_at_ms,
            ttl_secs: 60,
        }
    }

    // Goal: appended lines replay in order; no file means an empty log.
    #[test]
    fn append_and_replay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, none) = Log::<Record>::open(dir.path(), MAILBOXES, 10).expect("open");
        assert!(none.is_empty());
        assert!(!dir.path().join(FILE).exists(), "no file until needed");
        let rs = [
            add("a@x.test", 5),
            Record::Remove {
                address: "a@x.test".into(),
            },
        ];
        rs.iter().for_each(|r| log.append(r).expect("append"));
        log.sync().expect("sync");
        let (_, back) = Log::<Record>::open(dir.path(), MAILBOXES, 10).expect("reopen");
        assert_eq!(back, rs);
    }

    // Goal: a torn last line is cut off (and the file with it); a bad complete line, a
    // wrong format, an over-long line and an over-large file are errors naming the line.
    #[test]
    fn torn_tail_and_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE);
        let (mut log, _) = Log::<Record>::open(dir.path(), MAILBOXES, 10).expect("open");
        log.append(&add("a@x.test", 5)).expect("append");
        drop(log);
        let good = std::fs::read(&path).expect("read");
        let mut torn = good.clone();
        torn.extend_from_slice(b"{\"add\":{\"addr");
        std::fs::write(&path, &torn).expect("write");
        let (_, back) =
            Log::<Record>::open(dir.path(), MAILBOXES, 10).expect("torn tail is not corruption");
        assert_eq!(back, vec![add("a@x.test", 5)]);
        assert_eq!(std::fs::read(&path).expect("read"), good, "tail cut off");

        let cases: [(&[u8], usize); 3] = [
            (b"{\"add\":{}}", 3),
            (b"{\"tempmx_mailboxes\":9}", 1),
            (&[b'x'; LINE_BYTES_MAX + 1], 3),
        ];
        for (bad, line) in cases {
            let mut text = if line == 1 { Vec::new() } else { good.clone() };
            text.extend_from_slice(bad);
            text.push(b'\n');
            std::fs::write(&path, &text).expect("write");
            match Log::<Record>::open(dir.path(), MAILBOXES, 10) {
                Err(LogError::Corrupt { line: l, .. }) => assert_eq!(l, line),
                other => panic!("expected corrupt at line {line}, got {:?}", other.err()),
            }
        }
        std::fs::write(&path, vec![b'\n'; 3 * (LINE_BYTES_MAX + 1)]).expect("write");
        assert!(matches!(
            Log::<Record>::open(dir.path(), MAILBOXES, 1),
            Err(LogError::Corrupt { line: 0, .. })
        ));
    }

    // Goal: compaction is due past twice the live entries plus the slack, and leaves a
    // file that replays to exactly the live entries.
    #[test]
    fn compaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = Log::<Record>::open(dir.path(), MAILBOXES, 10_000).expect("open");
        for i in 0..=COMPACT_SLACK + 2 {
            log.append(&add(&format!("{i}@x.test"), 5)).expect("append");
        }
        assert!(!log.wants_compaction(2));
        assert!(log.wants_compaction(1));
        let live = vec![add("0@x.test", 5)];
        log.compact(&live).expect("compact");
        assert!(!log.wants_compaction(1));
        log.append(&add("new@x.test", 9))
            .expect("append after compaction");
        let (_, back) = Log::<Record>::open(dir.path(), MAILBOXES, 10_000).expect("reopen");
        assert_eq!(back, vec![add("0@x.test", 5), add("new@x.test", 9)]);
    }
}
