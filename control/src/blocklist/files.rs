//! Offline list files (one domain per line, `#` comments), re-read when their mtime changes.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracing::{info, warn};

use super::verdict::Outcome;

/// One list file and the domains it held when last read.
#[derive(Debug)]
pub struct ListFile {
    path: PathBuf,
    name: String,
    mtime: Option<SystemTime>,
    domains: HashSet<String>,
    error: Option<String>,
}

impl ListFile {
    /// A list not read yet; its name is `file:<file name>`.
    pub fn new(path: PathBuf) -> Self {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            path,
            name: format!("file:{file}"),
            mtime: None,
            domains: HashSet::new(),
            error: None,
        }
    }

    /// The list's name in results.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Re-reads the file if its mtime changed; a failure keeps no stale data and makes
    /// every check of this list an error until the file is fixed.
    pub fn refresh(&mut self, bytes_max: u64) {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified());
        match mtime {
            Ok(m) if Some(m) == self.mtime && self.error.is_none() => {}
            Ok(m) => self.load(m, bytes_max),
            Err(e) => self.fail(format!("cannot stat {}: {e}", self.path.display())),
        }
    }

    fn load(&mut self, mtime: SystemTime, bytes_max: u64) {
        match read_bounded(&self.path, bytes_max) {
            Ok(text) => {
                self.domains = parse(&text);
                self.mtime = Some(mtime);
                self.error = None;
                info!(list = %self.name, domains = self.domains.len(), "list file loaded");
            }
            Err(e) => self.fail(e),
        }
    }

    fn fail(&mut self, detail: String) {
        warn!(list = %self.name, error = %detail, "list file unusable");
        self.domains.clear();
        self.mtime = None;
        self.error = Some(detail);
    }

    /// Whether `domain` or one of its parent domains is on the list.
    pub fn check(&self, domain: &str) -> Outcome {
        if let Some(detail) = &self.error {
            return Outcome::Error {
                detail: detail.clone(),
            };
        }
        let mut name = domain;
        loop {
            if self.domains.contains(name) {
                return Outcome::Listed {
                    reason: format!("{name} is in {}", self.name),
                };
            }
            match name.split_once('.') {
                Some((_, parent)) if parent.contains('.') => name = parent,
                _ => return Outcome::Clean,
            }
        }
    }
}

fn read_bounded(path: &Path, bytes_max: u64) -> Result<String, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut text = String::new();
    // One byte over the limit tells "too big" apart from "exactly at the limit".
    let read = file.take(bytes_max + 1).read_to_string(&mut text);
    let n = read.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if n as u64 > bytes_max {
        return Err(format!(
            "{} is larger than {bytes_max} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// Parses list text; lines that are not domain names are skipped.
pub fn parse(text: &str) -> HashSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| tempmx_store::Domain::parse(l).ok())
        .map(|d| d.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: comments, blank lines, case and junk are handled; parents match; the file is re-read
    // on change and an oversized file is an error, never a listing.
    #[test]
    fn list_file_lifecycle() {
        let dir = tempfile::tempdir().expect("test setup");
        let path = dir.path().join("disposable.conf");
        std::fs::write(
            &path,
            "# disposable\nMailinator.com\n\n  spam.example # trailing\nnot a domain\n",
        )
        .expect("test setup");
        let mut list = ListFile::new(path.clone());
        list.refresh(1 << 20);
        assert_eq!(list.name(), "file:disposable.conf");
        assert!(matches!(
            list.check("mailinator.com"),
            Outcome::Listed { .. }
        ));
        assert!(matches!(
            list.check("x.spam.example"),
            Outcome::Listed { .. }
        ));
        assert_eq!(list.check("example"), Outcome::Clean);
        assert_eq!(list.check("clean.test"), Outcome::Clean);

        std::fs::write(&path, "clean.test\n").expect("test setup");
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .expect("test setup")
            .set_modified(later)
            .expect("test setup");
        list.refresh(1 << 20);
        assert!(matches!(list.check("clean.test"), Outcome::Listed { .. }));
        assert_eq!(list.check("mailinator.com"), Outcome::Clean);

        let size = std::fs::metadata(&path).expect("test setup").len();
        list.refresh(size - 1);
        assert!(
            matches!(list.check("clean.test"), Outcome::Listed { .. }),
            "same mtime: not re-read"
        );
        let mut fresh = ListFile::new(path.clone());
        fresh.refresh(size);
        assert!(
            matches!(fresh.check("clean.test"), Outcome::Listed { .. }),
            "exactly at the limit"
        );
        let mut small = ListFile::new(path);
        small.refresh(size - 1);
        assert!(matches!(small.check("clean.test"), Outcome::Error { .. }));
    }
}
