//! The index mappings and their versions. Change a mapping (or its analysis) and bump its
//! version: `admin search migrate` then builds the new index and swaps the alias. An
//! unchanged version means an upgrade reindexes nothing.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Statuses,
    Accounts,
}

#[derive(Debug, Clone, Copy)]
pub struct IndexSpec {
    pub kind: Kind,
    pub version: u32,
    /// Settings and mappings of `PUT /<index>`.
    pub body: fn() -> Value,
}

impl IndexSpec {
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Statuses => "statuses",
            Kind::Accounts => "accounts",
        }
    }

    /// What readers and the indexing job address.
    pub fn alias(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.name())
    }

    pub fn index(&self, prefix: &str) -> String {
        format!("{}-v{}", self.alias(prefix), self.version)
    }
}

pub const STATUSES: IndexSpec = IndexSpec {
    kind: Kind::Statuses,
    version: 1,
    body: statuses_body,
};

pub const ACCOUNTS: IndexSpec = IndexSpec {
    kind: Kind::Accounts,
    version: 1,
    body: accounts_body,
};

pub const ALL: [IndexSpec; 2] = [STATUSES, ACCOUNTS];

/// Text folded to lower-case ASCII, so that "cafe" finds "Café" as in Mastodon's analyzer.
fn analysis() -> Value {
    json!({
        "analyzer": {
            "content": {
                "type": "custom",
                "tokenizer": "standard",
                "filter": ["lowercase", "asciifolding"]
            }
        }
    })
}

fn settings() -> Value {
    // Replicas are the cluster operator's choice (`index.number_of_replicas` can be changed
    // live); one shard is plenty for an instance's statuses.
    json!({ "number_of_shards": 1, "analysis": analysis() })
}

fn statuses_body() -> Value {
    json!({
        "settings": settings(),
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": { "type": "long" },
                "account_id": { "type": "long" },
                "text": { "type": "text", "analyzer": "content" },
                "language": { "type": "keyword" },
                "visibility": { "type": "keyword" },
                "created_at": { "type": "date" },
                "has_media": { "type": "boolean" },
                "has_poll": { "type": "boolean" },
                "is_reply": { "type": "boolean" },
                "sensitive": { "type": "boolean" }
            }
        }
    })
}

fn accounts_body() -> Value {
    json!({
        "settings": settings(),
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": { "type": "long" },
                "acct": { "type": "text", "analyzer": "content" },
                "display_name": { "type": "text", "analyzer": "content" },
                "note": { "type": "text", "analyzer": "content" },
                "discoverable": { "type": "boolean" }
            }
        }
    })
}
