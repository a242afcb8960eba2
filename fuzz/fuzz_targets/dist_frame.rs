//! The distribution frame decoder (`trellis::dist::frame`):
//! single frames and a connection's frames with the atom cache;
//! `cargo +nightly fuzz run dist_frame`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    trellis_fuzz::dist_checks::frame(data);
    // The same bytes as a connection's frames, with the atom cache.
    trellis_fuzz::dist_checks::connection(&trellis_fuzz::dist_checks::split(data));
});
