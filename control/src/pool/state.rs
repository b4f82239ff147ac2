//! The pool's persistent state and its file under `<data_dir>/control/`, written
//! atomically (temp file, fsync, rename, fsync of the directory).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::audit::AuditLog;
use super::config::RotationPolicy;
use super::domain::Domain;
use crate::blocklist::tracker::ListStatus;

/// Version of the state file layout; another value is refused at start-up.
const FORMAT: u32 = 1;
const FILE: &str = "state.json";
const TEMP: &str = "state.json.tmp";

/// Everything the control plane must remember across restarts (the mailbox registry
/// keeps its own log beside it).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct PoolState {
    /// Domains by name.
    pub domains: BTreeMap<String, Domain>,
    /// The rotation policy in force.
    pub policy: RotationPolicy,
    /// The audit log.
    pub audit: AuditLog,
    /// Blocklist results: domain → list → status.
    pub checks: BTreeMap<String, BTreeMap<String, ListStatus>>,
}

/// What is written to disk.
#[derive(Debug, Deserialize, Serialize)]
pub struct Persisted {
    /// Layout version.
    pub format: u32,
    /// The pool.
    pub state: PoolState,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file is not readable state (bad JSON, unknown format).
    #[error(
        "control state file {path} is corrupt: {detail} (restore it from a backup or remove the directory to start from the configuration)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An I/O operation failed.
    #[error("control state {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory exists and holds files, but not the state file.
    #[error(
        "control state directory {0} exists but has no state.json (restore it or remove the directory to start from the configuration)"
    )]
    Missing(PathBuf),
}

/// The state file of one data directory.
#[derive(Debug)]
pub struct StateFile {
    dir: PathBuf,
}

impl StateFile {
    /// Opens `<data_dir>/control/`. No directory (or an empty one) is a first start
    /// (`None`); a directory with other files but no state file, or an unreadable file, is an error.
    pub fn open(data_dir: &Path) -> Result<(Self, Option<Persisted>), StateError> {
        let dir = Self::dir_in(data_dir);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        let file = dir.join(FILE);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            return Ok((Self { dir }, None));
        }
        let text = match std::fs::read(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let empty = std::fs::read_dir(&dir).map_err(io(&dir))?.next().is_none();
                return if empty {
                    Ok((Self { dir }, None))
                } else {
                    Err(StateError::Missing(dir))
                };
            }
            Err(e) => return Err(io(&file)(e)),
        };
        let corrupt = |detail: String| StateError::Corrupt {
            path: file.clone(),
            detail,
        };
        let saved: Persisted = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if saved.format != FORMAT {
            return Err(corrupt(format!(
                "format {} (this build reads {FORMAT})",
                saved.format
            )));
        }
        Ok((Self { dir }, Some(saved)))
    }

    /// The directory under `data_dir` that holds the state (and the mailbox registry's log).
    pub fn dir_in(data_dir: &Path) -> PathBuf {
        data_dir.join("control")
    }

    /// The directory holding the state (and the mailbox registry's log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the state atomically: a crash leaves either the old or the new file.
    pub fn save(&self, state: &PoolState) -> Result<(), StateError> {
        let doc = Persisted {
            format: FORMAT,
            state: state.clone(),
        };
        let bytes = serde_json::to_vec(&doc).map_err(|e| StateError::Corrupt {
            path: self.dir.join(FILE),
            detail: e.to_string(),
        })?;
        let temp = self.dir.join(TEMP);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        let mut f = std::fs::File::create(&temp).map_err(io(&temp))?;
        f.write_all(&bytes).map_err(io(&temp))?;
        f.sync_all().map_err(io(&temp))?;
        std::fs::rename(&temp, self.dir.join(FILE)).map_err(io(&temp))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::domain::DomainState;

    // Goal: a saved state reads back equal; first start, missing and corrupt files are told apart.
    #[test]
    fn save_load_and_failures() {
        let dir = tempfile::tempdir().expect("test setup");
        let (file, none) = StateFile::open(dir.path()).expect("test setup");
        assert!(none.is_none(), "first start");
        let mut state = PoolState::default();
        state.domains.insert(
            "a.test".into(),
            Domain::new("a.test".into(), DomainState::Active, 7),
        );
        file.save(&state).expect("test setup");
        let (_, loaded) = StateFile::open(dir.path()).expect("test setup");
        let loaded = loaded.expect("test setup");
        assert_eq!(loaded.state, state);

        let path = dir.path().join("control").join(FILE);
        std::fs::write(&path, b"{ not json").expect("test setup");
        assert!(matches!(
            StateFile::open(dir.path()),
            Err(StateError::Corrupt { .. })
        ));
        std::fs::write(&path, br#"{"format":99,"state":{}}"#).expect("test setup");
        assert!(matches!(
            StateFile::open(dir.path()),
            Err(StateError::Corrupt { .. })
        ));
        std::fs::remove_file(&path).expect("test setup");
        std::fs::write(dir.path().join("control").join(TEMP), b"x").expect("test setup");
        assert!(matches!(
            StateFile::open(dir.path()),
            Err(StateError::Missing(_))
        ));
    }
}
