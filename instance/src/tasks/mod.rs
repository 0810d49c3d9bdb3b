//! The application's background jobs (fan-out, mail, maintenance), registered with the
//! worker's job registry.

/// Registers every task kind (and the periodic ones) with the worker.
pub fn register(_registry: &mut crate::jobs::Registry) {}
