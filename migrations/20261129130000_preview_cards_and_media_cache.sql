-- Link previews (Mastodon's preview_cards): one card per URL, shared by every status linking
-- it, built by the worker from the page's OpenGraph/Twitter tags. Strings are '' when the
-- page had none, as Mastodon stores and serves them.
CREATE TABLE preview_cards (
    id                  bigint PRIMARY KEY DEFAULT fedi_id(),
    url                 text NOT NULL UNIQUE,
    title               text NOT NULL DEFAULT '',
    description         text NOT NULL DEFAULT '',
    type                text NOT NULL DEFAULT 'link' CHECK (type IN ('link', 'photo', 'video', 'rich')),
    author_name         text NOT NULL DEFAULT '',
    author_url          text NOT NULL DEFAULT '',
    provider_name       text NOT NULL DEFAULT '',
    provider_url        text NOT NULL DEFAULT '',
    html                text NOT NULL DEFAULT '',
    embed_url           text NOT NULL DEFAULT '',
    language            text,
    published_at        timestamptz,
    -- The page's image as copied into the bucket's cache prefix, and where it came from;
    -- the retention job drops the copy and keeps the card (Mastodon's `image` removal).
    image_key           text,
    image_remote_url    text,
    image_description   text NOT NULL DEFAULT '',
    width               integer NOT NULL DEFAULT 0,
    height              integer NOT NULL DEFAULT 0,
    blurhash            text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX preview_cards_cached_images ON preview_cards (updated_at) WHERE image_key IS NOT NULL;

CREATE TABLE preview_cards_statuses (
    status_id       bigint PRIMARY KEY REFERENCES statuses ON DELETE CASCADE,
    preview_card_id bigint NOT NULL REFERENCES preview_cards ON DELETE CASCADE,
    url             text NOT NULL
);
CREATE INDEX preview_cards_statuses_card ON preview_cards_statuses (preview_card_id);

-- Remote attachments copied into the bucket's cache prefix: `file_key`/`preview_key` point at
-- the copies from `cached_at` on; the retention job deletes them and clears all three, so
-- the attachment is served from `remote_url` again.
ALTER TABLE media_attachments ADD COLUMN cached_at timestamptz;
CREATE INDEX media_attachments_cached ON media_attachments (cached_at) WHERE cached_at IS NOT NULL;
