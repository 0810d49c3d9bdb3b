-- Lists of followed accounts (Mastodon's `lists`, `list_accounts`) and read positions
-- (Mastodon's `markers`).
CREATE TABLE lists (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id      bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 100),
    replies_policy  text NOT NULL DEFAULT 'list'
        CHECK (replies_policy IN ('followed', 'list', 'none')),
    exclusive       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lists_account ON lists (account_id, id);

CREATE TABLE list_accounts (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    list_id         bigint NOT NULL REFERENCES lists ON DELETE CASCADE,
    account_id      bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    -- Members must be followed: unfollowing removes them from the owner's lists, as in
    -- Mastodon, without the unfollow code having to know about lists.
    follow_id       bigint NOT NULL REFERENCES follows ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX list_accounts_pair ON list_accounts (list_id, account_id);
-- "Which lists hold this account" (`/accounts/:id/lists`) and the follow cascade.
CREATE INDEX list_accounts_account ON list_accounts (account_id);
CREATE INDEX list_accounts_follow ON list_accounts (follow_id);

CREATE TABLE markers (
    user_id         bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    timeline        text NOT NULL CHECK (timeline IN ('home', 'notifications')),
    last_read_id    bigint NOT NULL,
    -- Mastodon's `lock_version`, shown as `version`: clients compare it to detect that
    -- another client moved the marker.
    version         integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, timeline)
);
