-- Relations between accounts. Each row's id (fedi_id, time-ordered) is the cursor of the
-- lists that show them (followers, following, follow requests, blocks, mutes), as in Mastodon.

CREATE TABLE follows (
    id                  bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id          bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id   bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    -- Whether the follower's home feed shows the target's boosts.
    show_reblogs        boolean NOT NULL DEFAULT true,
    -- Whether the follower is notified of each new post.
    notify              boolean NOT NULL DEFAULT false,
    -- Only posts in these languages reach the follower's feed; NULL means all.
    languages           text[] CHECK (cardinality(languages) <= 100),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (account_id <> target_account_id)
);
CREATE UNIQUE INDEX follows_pair ON follows (account_id, target_account_id);
-- Followers and followed accounts of an account, newest first.
CREATE INDEX follows_target ON follows (target_account_id, id);
CREATE INDEX follows_account ON follows (account_id, id);

-- Follows waiting for a locked account's approval.
CREATE TABLE follow_requests (
    id                  bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id          bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id   bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    show_reblogs        boolean NOT NULL DEFAULT true,
    notify              boolean NOT NULL DEFAULT false,
    languages           text[] CHECK (cardinality(languages) <= 100),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (account_id <> target_account_id)
);
CREATE UNIQUE INDEX follow_requests_pair ON follow_requests (account_id, target_account_id);
CREATE INDEX follow_requests_target ON follow_requests (target_account_id, id);

CREATE TABLE blocks (
    id                  bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id          bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id   bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (account_id <> target_account_id)
);
CREATE UNIQUE INDEX blocks_pair ON blocks (account_id, target_account_id);
-- "Who blocks me" (blocked_by, filtering what a blocker must not see).
CREATE INDEX blocks_target ON blocks (target_account_id);

CREATE TABLE mutes (
    id                  bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id          bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id   bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    -- Also hide notifications from the muted account (Mastodon's default).
    hide_notifications  boolean NOT NULL DEFAULT true,
    -- A temporary mute ends here; expired rows count as absent until a worker removes them.
    expires_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (account_id <> target_account_id)
);
CREATE UNIQUE INDEX mutes_pair ON mutes (account_id, target_account_id);
