//! Full-text search in OpenSearch, when `FEDI_SEARCH_URL` is set (issue 4); PostgreSQL's
//! full-text search answers otherwise (`api::search::backend`).
//!
//! Indices are versioned: `<prefix>-statuses-v<N>` holds the mapping of version N and the
//! alias `<prefix>-statuses` names the one in use. `fedi-server admin search migrate`
//! builds a new version from PostgreSQL and swaps the alias; the worker's `search.index`
//! job keeps the current one up to date as statuses are written. OpenSearch only finds
//! candidates: who may see what is always decided again in PostgreSQL.

pub mod client;
pub mod documents;
pub mod jobs;
pub mod mappings;
pub mod migrate;

pub use client::SearchClient;
pub use mappings::{ACCOUNTS, IndexSpec, STATUSES};
