//! The floor under a 4 KiB append: only the memory work the store's design requires, in a
//! ring shaped like the default one (16 MiB segments, zeroed when recycled), with no
//! record, index or MIME scan. Prints the thread CPU time per 4 KiB for: the copy alone,
//! zeroing a whole segment when it is recycled plus the copy, the same plus the frame
//! CRC, and zeroing 256 KiB ahead of the writer (as `memory` mode does) plus copy and
//! CRC. Compare with `append_cpu` to see how much of an append is the design's memory
//! traffic.
//!
//! Run: `cargo run --release -p tempmx-store --example append_floor`

#[path = "support/thread_cpu.rs"]
mod support;
use support::thread_cpu;

const ARENA_BYTES: usize = 240 << 20;
const SEGMENT_BYTES: usize = 16 << 20;
/// A 4 KiB record plus header and summary, rounded to 16 as frames are.
const FRAME_BYTES: usize = 4096 + 64;
const APPENDS: usize = 300_000;
/// What `memory` mode zeroes ahead of its writer at a time.
const ZERO_AHEAD_BYTES: usize = 256 << 10;
const ROUNDS: usize = 7;

fn main() {
    let mut arena = vec![0u8; ARENA_BYTES];
    // Touch every page first, as the store's arena is committed at open.
    arena.iter_mut().step_by(4096).for_each(|b| *b = 1);
    let body: Vec<u8> = (0..4096u32).map(|i| (i * 13) as u8).collect();
    for (name, zero, ahead, crc) in [
        ("copy", false, false, false),
        ("zero + copy", true, false, false),
        ("zero + copy + CRC", true, false, true),
        ("zero ahead + copy + CRC", false, true, true),
    ] {
        let mut pos = 0;
        let mut zeroed = 0;
        let mut sum = 0u32;
        let mut per = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t0 = thread_cpu();
            for _ in 0..APPENDS {
                if pos % SEGMENT_BYTES + FRAME_BYTES > SEGMENT_BYTES {
                    pos = (pos / SEGMENT_BYTES + 1) * SEGMENT_BYTES;
                }
                if pos == ARENA_BYTES {
                    pos = 0;
                }
                if zero && pos % SEGMENT_BYTES == 0 {
                    arena[pos..pos + SEGMENT_BYTES].fill(0);
                }
                if ahead && pos % SEGMENT_BYTES == 0 {
                    zeroed = pos;
                }
                if ahead && zeroed < pos + FRAME_BYTES {
                    let end = (pos + FRAME_BYTES).max(zeroed + ZERO_AHEAD_BYTES);
                    arena[zeroed..end].fill(0);
                    zeroed = end;
                }
                arena[pos..pos + body.len()].copy_from_slice(&body);
                if crc {
                    sum =
                        sum.wrapping_add(tempmx_store::crc::crc32c(&arena[pos..pos + body.len()]));
                }
                pos += FRAME_BYTES;
            }
            per.push((thread_cpu() - t0).as_nanos() as f64 / APPENDS as f64);
        }
        per.sort_by(f64::total_cmp);
        // `sum` keeps the CRC from being optimised away.
        println!(
            "{name:>24}: median {:.0} ns CPU per 4 KiB (rounds {:?}; {sum:08x})",
            per[ROUNDS / 2],
            per.iter().map(|p| p.round() as u64).collect::<Vec<_>>()
        );
    }
}
