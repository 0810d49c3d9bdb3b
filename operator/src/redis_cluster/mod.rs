//! Bootstraps, scales and checks a Redis Cluster through the `redis` crate.
