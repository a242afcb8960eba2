//! The kvstore example's RESP request parser: `cargo +nightly fuzz run resp`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trellis_fuzz::checks::resp(data));
