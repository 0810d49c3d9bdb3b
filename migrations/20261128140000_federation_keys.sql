-- Federation keys: every local actor signs its outgoing requests with an RSA key pair whose
-- public half it publishes (`publicKey` of the actor document); remote keys are cached so
-- that each incoming request does not fetch its signer again.

-- Local accounts' key pairs (PEM: PKCS#8 private, SPKI public, as Mastodon publishes).
-- Created with the account; accounts created before this table get theirs on first use.
CREATE TABLE account_keys (
    account_id      bigint PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    private_key_pem text NOT NULL,
    public_key_pem  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The instance actor (`/actor`) signs fetches: peers in secure mode refuse unsigned GETs,
-- and no user should appear as the fetcher. One row.
CREATE TABLE instance_actor_keys (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    private_key_pem text NOT NULL,
    public_key_pem  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Public keys of remote actors, by the keyId their signatures name.
CREATE TABLE remote_keys (
    key_id          text PRIMARY KEY CHECK (length(key_id) <= 2048),
    -- The actor the key belongs to (its `id`), checked against the activity's actor.
    owner           text NOT NULL CHECK (length(owner) <= 2048),
    public_key_pem  text NOT NULL CHECK (length(public_key_pem) <= 16384),
    fetched_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX remote_keys_owner ON remote_keys (owner);
