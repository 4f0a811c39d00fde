//! Benchmarks live in `stages.rs` (`cargo bench -p coop-benches`); the side-by-side
//! comparison with restic and borg is `compare.sh`.
