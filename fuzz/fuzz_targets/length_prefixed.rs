//! The length-prefixed decoders (the example's `Frames`, and
//! `FramedProtocol` over `LengthDelimitedCodec`):
//! `cargo +nightly fuzz run length_prefixed`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trellis_fuzz::checks::length_prefixed(data));
