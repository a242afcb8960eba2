//! Synchronisation primitives (stub; being written).
