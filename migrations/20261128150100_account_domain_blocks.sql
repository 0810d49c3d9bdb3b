-- Domains a user blocks (Mastodon's `account_domain_blocks`): their public statuses, boosts
-- of their statuses and their notifications are hidden from the user, and their accounts
-- cannot follow the user. The row's id is the cursor of `GET /api/v1/domain_blocks`. The
-- streamer's filter probes for this table (streaming/schema.rs).
CREATE TABLE account_domain_blocks (
    id          bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    -- Lower-case ASCII (punycode), as `accounts.domain` is stored.
    domain      text NOT NULL CHECK (length(domain) BETWEEN 1 AND 253),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, domain)
);
CREATE INDEX account_domain_blocks_page ON account_domain_blocks (account_id, id DESC);
