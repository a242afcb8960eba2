//! Test kit (stub; being written).
