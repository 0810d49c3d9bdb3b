-- What statuses refer to and what accounts do with them: mentions, hashtags, edits,
-- favourites, bookmarks and pins. Rows that name a status go with it (ON DELETE CASCADE).

-- The accounts a status mentions. Besides notifications, a mention is what lets an account
-- see a private or direct status: the visibility rules read this table.
CREATE TABLE mentions (
    id          bigint PRIMARY KEY DEFAULT fedi_id(),
    status_id   bigint NOT NULL REFERENCES statuses ON DELETE CASCADE,
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (status_id, account_id)
);
-- "Statuses that mention me" (notifications, the direct timeline).
CREATE INDEX mentions_account ON mentions (account_id, status_id);

-- Hashtags, one row per name whatever its case; `name` keeps the first spelling seen.
CREATE TABLE tags (
    id          bigint PRIMARY KEY DEFAULT fedi_id(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tags_name ON tags (lower(name));

CREATE TABLE statuses_tags (
    status_id   bigint NOT NULL REFERENCES statuses ON DELETE CASCADE,
    tag_id      bigint NOT NULL REFERENCES tags ON DELETE CASCADE,
    PRIMARY KEY (status_id, tag_id)
);
-- Hashtag timelines and `tagged=`: the statuses of a tag, newest first.
CREATE INDEX statuses_tags_tag ON statuses_tags (tag_id, status_id DESC);

-- Versions of edited statuses (Mastodon's status_edits): the original is recorded at the
-- first edit, then each edit's result, so that history lists every version in order.
CREATE TABLE status_edits (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    status_id       bigint NOT NULL REFERENCES statuses ON DELETE CASCADE,
    -- Who made the edit (the author; moderators later).
    account_id      bigint REFERENCES accounts ON DELETE SET NULL,
    text            text NOT NULL DEFAULT '' CHECK (length(text) <= 100000),
    content_html    text NOT NULL DEFAULT '',
    spoiler_text    text NOT NULL DEFAULT '' CHECK (length(spoiler_text) <= 10000),
    sensitive       boolean NOT NULL DEFAULT false,
    ordered_media_attachment_ids bigint[] NOT NULL DEFAULT '{}',
    -- The attachments' descriptions at the time, in the same order.
    media_descriptions text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_edits_status ON status_edits (status_id, id);

-- Each row's id is the cursor of the user's favourites/bookmarks list (shown only in Link
-- headers, as in Mastodon).
CREATE TABLE favourites (
    id          bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    status_id   bigint NOT NULL REFERENCES statuses ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, status_id)
);
CREATE INDEX favourites_account ON favourites (account_id, id DESC);
CREATE INDEX favourites_status ON favourites (status_id, id DESC);

CREATE TABLE bookmarks (
    id          bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    status_id   bigint NOT NULL REFERENCES statuses ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, status_id)
);
CREATE INDEX bookmarks_account ON bookmarks (account_id, id DESC);
CREATE INDEX bookmarks_status ON bookmarks (status_id);

-- Statuses an account features on its profile (at most 5 local ones, checked by the API).
CREATE TABLE status_pins (
    id          bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    status_id   bigint NOT NULL REFERENCES statuses ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, status_id)
);
CREATE INDEX status_pins_status ON status_pins (status_id);
