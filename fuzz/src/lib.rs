//! Fuzz targets for every decoder of peer bytes in Trellis and its
//! examples. The properties live in [`checks`], shared with the stable
//! harness `tests/fuzz_decoders.rs`; the decoders are compiled in from the
//! examples' own files.

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/len_prefixed.rs"]
mod len_prefixed;
#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/kvstore/resp.rs"]
mod resp;

pub mod checks;
pub mod dist_checks;
