//! The `bench` binary's command line, run as a process: `--help` documents the fault drill and the
//! `images` flags, and `chaos` refuses a load too short for its faults before it starts anything.
//! (Being an integration test, this also makes `cargo test` build `target/debug/bench`, which
//! `scripts/test` then runs the short drill with, next to the debug servers the tests built.)

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(args)
        .env_remove("BENCH_CHAOS_SECS")
        .output()
        .expect("run the bench binary")
}

#[test]
fn help_documents_the_chaos_drill() {
    let out = bench(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let usage = String::from_utf8_lossy(&out.stdout);
    for needle in ["bench chaos", "--short", "--chaos-secs", "--settle-secs"] {
        assert!(usage.contains(needle), "{needle} missing from:\n{usage}");
    }
}

#[test]
fn help_documents_the_images_scenario() {
    let out = bench(&["--help"]);
    let usage = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "images",
        "--image-count",
        "--image-parallel",
        "--image-parallel-count",
        "--worker-metrics",
    ] {
        assert!(usage.contains(needle), "{needle} missing from:\n{usage}");
    }
}

#[test]
fn chaos_refuses_a_load_too_short_for_its_faults() {
    let out = bench(&["chaos", "--chaos-secs", "5"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 12 s"), "{err}");
}
