//! TCP serving (stub; being written).
