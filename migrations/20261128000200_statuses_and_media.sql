-- Statuses and their media. Local statuses are the record; remote ones arrive with
-- federation. Deleting keeps no row: Mastodon's redraft data is returned by the DELETE.

CREATE TABLE statuses (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id      bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    -- ActivityPub id; NULL for local statuses (derived from the id).
    uri             text UNIQUE,
    -- The text as written (local) and the rendered, sanitized HTML clients show.
    text            text NOT NULL DEFAULT '' CHECK (length(text) <= 100000),
    content_html    text NOT NULL DEFAULT '',
    spoiler_text    text NOT NULL DEFAULT '' CHECK (length(spoiler_text) <= 10000),
    visibility      text NOT NULL DEFAULT 'public'
                    CHECK (visibility IN ('public', 'unlisted', 'private', 'direct')),
    sensitive       boolean NOT NULL DEFAULT false,
    language        text CHECK (language IS NULL OR length(language) <= 16),
    in_reply_to_id  bigint REFERENCES statuses ON DELETE SET NULL,
    in_reply_to_account_id bigint REFERENCES accounts ON DELETE SET NULL,
    -- A reblog is a status row pointing at the original, with no text of its own.
    reblog_of_id    bigint REFERENCES statuses ON DELETE CASCADE,
    -- The attachments in the order the author gave (Mastodon keeps the same column).
    ordered_media_attachment_ids bigint[] NOT NULL DEFAULT '{}',
    -- The application that posted it (shown as `application` to its author).
    application_id  bigint REFERENCES oauth_applications ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    -- One reblog per account and original.
    UNIQUE (account_id, reblog_of_id)
);
CREATE INDEX statuses_account ON statuses (account_id, id DESC);
CREATE INDEX statuses_reply ON statuses (in_reply_to_id) WHERE in_reply_to_id IS NOT NULL;
CREATE INDEX statuses_reblog ON statuses (reblog_of_id) WHERE reblog_of_id IS NOT NULL;
-- The public timelines: public, not reblogs, newest first.
CREATE INDEX statuses_public ON statuses (id DESC)
    WHERE visibility = 'public' AND reblog_of_id IS NULL;

CREATE TABLE media_attachments (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id      bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    -- Set when a status takes the attachment; unattached ones are cleaned up later.
    status_id       bigint REFERENCES statuses ON DELETE SET NULL,
    type            text NOT NULL CHECK (type IN ('image', 'gifv', 'video', 'audio', 'unknown')),
    -- Object keys in the media bucket: the processed original and its preview.
    file_key        text,
    preview_key     text,
    content_type    text,
    file_size       bigint,
    -- Mastodon's `meta`: original/small sizes, aspect, focus, duration...
    meta            jsonb NOT NULL DEFAULT '{}',
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 1500),
    blurhash        text,
    -- 'processing' until the worker has made the files (non-image media); then 'ready'.
    state           text NOT NULL DEFAULT 'ready' CHECK (state IN ('processing', 'ready', 'failed')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_attachments_status ON media_attachments (status_id) WHERE status_id IS NOT NULL;
CREATE INDEX media_attachments_unattached ON media_attachments (account_id, created_at)
    WHERE status_id IS NULL;
