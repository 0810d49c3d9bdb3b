//! The roles of `fedi-server`, as a library so that integration tests can reach inside the
//! process (which pool served a query) where the HTTP boundary cannot tell.

pub mod admin;
pub mod api;
pub mod auth;
pub mod db;
pub mod events;
pub mod federation;
pub mod jobs;
pub mod media;
pub mod migrate;
pub mod redis_keys;
pub mod search;
mod shutdown;
pub mod state;
pub mod storage;
pub mod streaming;
pub mod tasks;
pub mod telemetry;
pub mod text;
pub mod web;
