-- Hashtags an account follows (`POST /api/v1/tags/:name/follow`). The row's id is the
-- cursor of `GET /api/v1/followed_tags`.
CREATE TABLE tag_follows (
    id          bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    tag_id      bigint NOT NULL REFERENCES tags ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, tag_id)
);
CREATE INDEX tag_follows_account ON tag_follows (account_id, id DESC);
-- Who follows a tag: the fan-out of a tagged status to home feeds.
CREATE INDEX tag_follows_tag ON tag_follows (tag_id);
