//! The distribution frame decoder (`trellis::dist::frame`):
//! `cargo +nightly fuzz run dist_frame`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trellis_fuzz::dist_checks::frame(data));
