//! Memory channels (stub; being written).
