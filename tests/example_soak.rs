//! The chaos soak (`examples/soak.rs`) as a CI check: a short run of the
//! same tree, chaos and checks as the long runs RELIABILITY.md reports. It
//! fails on any violation of the promises the soak checks (no call late or
//! hung, consistent replies, a settled tree that agrees with the process
//! table and the registry, nothing left after shutdown).
//!
//! The slack for late calls is wider than the long runs' 10 ms: this runs
//! an unoptimised build on a shared two-core CI machine, where a worker can
//! be descheduled for tens of milliseconds; a hung call still fails it.

#[allow(dead_code)]
#[path = "../examples/soak.rs"]
mod soak;

#[test]
fn a_short_chaos_soak_finds_no_violation() {
    let args = ["--duration", "20", "--servers", "2000", "--slack-ms", "150"];
    let config = soak::parse_args(args.iter().map(|s| (*s).to_owned()))
        .expect("the soak's flags parse")
        .expect("a configuration, not --help");
    soak::install_panic_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let violations = runtime.block_on(soak::soak(config));
    assert!(
        violations.is_empty(),
        "the soak found violations:\n{}",
        violations.join("\n")
    );
}
