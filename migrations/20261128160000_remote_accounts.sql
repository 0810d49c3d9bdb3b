-- What federation needs to know about remote actors and their statuses: the actor's
-- ActivityPub id and endpoints (deliveries go to `shared_inbox_url` when there is one,
-- else `inbox_url`), its media as the remote URLs it publishes, and when it was last
-- fetched (a day-old copy is fetched again).

ALTER TABLE accounts
    ADD COLUMN uri                 text UNIQUE CHECK (length(uri) <= 2048),
    ADD COLUMN url                 text CHECK (length(url) <= 2048),
    ADD COLUMN inbox_url           text CHECK (length(inbox_url) <= 2048),
    ADD COLUMN shared_inbox_url    text CHECK (length(shared_inbox_url) <= 2048),
    ADD COLUMN followers_url       text CHECK (length(followers_url) <= 2048),
    ADD COLUMN following_url       text CHECK (length(following_url) <= 2048),
    ADD COLUMN outbox_url          text CHECK (length(outbox_url) <= 2048),
    ADD COLUMN featured_url        text CHECK (length(featured_url) <= 2048),
    -- Person, Service, Application, Group or Organization (NULL for local accounts).
    ADD COLUMN actor_type          text,
    ADD COLUMN avatar_remote_url   text CHECK (length(avatar_remote_url) <= 2048),
    ADD COLUMN header_remote_url   text CHECK (length(header_remote_url) <= 2048),
    ADD COLUMN last_webfingered_at timestamptz,
    ADD COLUMN fetched_at          timestamptz,
    -- Set by a Move: where the account went.
    ADD COLUMN moved_to_account_id bigint REFERENCES accounts ON DELETE SET NULL;
CREATE INDEX accounts_shared_inbox ON accounts (shared_inbox_url)
    WHERE shared_inbox_url IS NOT NULL;

-- Local limits are the API's; remote profiles come with longer names and notes (Mastodon's
-- hard limits for remote accounts: 100-character display names, 10,000-character notes).
ALTER TABLE accounts DROP CONSTRAINT accounts_username_check,
    ADD CONSTRAINT accounts_username_check CHECK (
        length(username) BETWEEN 1 AND (CASE WHEN domain IS NULL THEN 30 ELSE 2048 END));
ALTER TABLE accounts DROP CONSTRAINT accounts_display_name_check,
    ADD CONSTRAINT accounts_display_name_check CHECK (
        length(display_name) <= (CASE WHEN domain IS NULL THEN 30 ELSE 100 END));
ALTER TABLE accounts DROP CONSTRAINT accounts_note_check,
    ADD CONSTRAINT accounts_note_check CHECK (
        length(note) <= (CASE WHEN domain IS NULL THEN 500 ELSE 10000 END));

-- `uri` exists since the statuses migration (NULL for local statuses).
ALTER TABLE statuses
    ADD COLUMN url   text CHECK (length(url) <= 2048),
    ADD COLUMN local boolean NOT NULL DEFAULT true;
CREATE INDEX statuses_remote ON statuses (id DESC) WHERE NOT local;

-- Remote attachments are shown from where their author's server keeps them.
ALTER TABLE media_attachments
    ADD COLUMN remote_url text CHECK (length(remote_url) <= 2048),
    ADD COLUMN preview_remote_url text CHECK (length(preview_remote_url) <= 2048);

-- Activities already processed, by id, so that a redelivery changes nothing. Kept a week
-- (peers retry for two or three days).
CREATE TABLE processed_activities (
    uri          text PRIMARY KEY CHECK (length(uri) <= 2048),
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_activities_age ON processed_activities (processed_at);

-- Reports (Flag activities, and later the API's): a minimal record for moderators.
CREATE TABLE reports (
    id                  bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id          bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id   bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    status_ids          bigint[] NOT NULL DEFAULT '{}',
    comment             text NOT NULL DEFAULT '' CHECK (length(comment) <= 10000),
    -- The Flag's id, for redeliveries.
    uri                 text UNIQUE CHECK (length(uri) <= 2048),
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reports_target ON reports (target_account_id);
