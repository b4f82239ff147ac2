//! Shared by the start-up, deadline and OpenAPI tests of the running binary: the shared
//! test config with single keys changed, and the Python tools `ops/ci/test.sh` installs.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::path::{Path, PathBuf};

/// `binary_support::config_text` (TTL 3600 s) with each `(dotted.key, value)` set.
pub fn config_with(data_dir: Option<&Path>, edits: &[(&str, toml::Value)]) -> String {
    let text = crate::binary_support::config_text(data_dir, 3600, "");
    let mut root: toml::Table = text.parse().expect("the shared config parses");
    for (key, value) in edits {
        let mut table = &mut root;
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().expect("a key");
        for part in parts {
            table = table
                .entry(part)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("a table on the key's path");
        }
        table.insert(last.to_owned(), value.clone());
    }
    toml::to_string(&root).expect("config serialises")
}

/// The path of `name` on `PATH`; `ops/ci/test.sh` installs the Python tools into a
/// virtual environment and puts its `bin` first on `PATH`.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not on PATH: run the tests through ops/ci/test.sh"))
}

/// Stops a binary that has just started: one request to see it serves, then SIGTERM (its
/// signal handlers are installed before it logs "tempmx serving", so no settle time).
pub fn stop_when_serving(app: crate::binary_support::Running) {
    let (status, _) =
        crate::binary_support::http("GET", &format!("http://{}/healthz", app.admin), None, None);
    assert_eq!(status, 200);
    app.stop();
}
