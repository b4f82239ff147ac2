//! CPU time of one verification extraction (`tempmx::verify::extract`), per message of
//! the verification corpus, read from the thread's CPU clock like the store's
//! `append_cpu` example, so the two compare: extraction would have to cost under 2 % of
//! an append to run at ingest (issue 16). Times `ROUNDS` passes over the corpus and prints
//! each pass and the median.
//!
//! Run: `cargo run --release -p tempmx --example verify_cpu`

use std::path::Path;

#[path = "../../store/examples/support/thread_cpu.rs"]
mod support;
use support::thread_cpu;

const ROUNDS: usize = 7;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat_verify/corpus");
    let mut mails: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read(e.path()).expect("read"))
        .collect();
    mails.sort();
    let bytes: usize = mails.iter().map(Vec::len).sum();
    println!(
        "{} mails, {} bytes on average",
        mails.len(),
        bytes / mails.len().max(1)
    );
    let mut found = 0usize;
    let mut per = Vec::with_capacity(ROUNDS);
    for r in 0..ROUNDS {
        let t0 = thread_cpu();
        for m in &mails {
            found += tempmx::verify::extract(m).len();
        }
        let ns = (thread_cpu() - t0).as_nanos() as f64 / mails.len() as f64;
        println!("round {r}: {ns:.0} ns CPU per extraction");
        per.push(ns);
    }
    per.sort_by(f64::total_cmp);
    println!(
        "median: {:.0} ns CPU per extraction ({found} verifications found in all rounds)",
        per[ROUNDS / 2]
    );
}
