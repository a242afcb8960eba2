//! Mutations of valid inputs for the stable fuzz harnesses
//! (`tests/fuzz_decoders.rs`, `tests/fuzz_dist.rs`): each harness brings
//! its own hostile tokens, the changes themselves are the same.

use proptest::prelude::*;
use proptest::sample::Index;

/// One change to a valid input.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Cut the input there.
    Truncate(Index),
    /// XOR the byte there with a non-zero mask.
    Flip(Index, u8),
    /// Insert a hostile token there.
    Insert(Index, Vec<u8>),
    /// Remove up to 8 bytes from there.
    Delete(Index, usize),
    /// Repeat up to 32 bytes from there, right after them.
    Repeat(Index, usize),
}

pub(crate) fn apply(mut input: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match mutation {
            Mutation::Truncate(i) => input.truncate(at(i, input.len())),
            Mutation::Flip(i, mask) => {
                if !input.is_empty() {
                    let i = i.index(input.len());
                    input[i] ^= mask;
                }
            }
            Mutation::Insert(i, token) => {
                let i = at(i, input.len());
                input.splice(i..i, token.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = at(i, input.len());
                let end = (i + n).min(input.len());
                input.drain(i..end);
            }
            Mutation::Repeat(i, n) => {
                let i = at(i, input.len());
                let end = (i + n).min(input.len());
                let copy = input[i..end].to_vec();
                input.splice(end..end, copy);
            }
        }
    }
    input
}

pub(crate) fn mutations(tokens: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<Mutation>> {
    let mutation = prop_oneof![
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1u8..).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), prop::sample::select(tokens)).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<Index>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ];
    prop::collection::vec(mutation, 1..5)
}
