-- Direct conversations as each local participant sees them (Mastodon's
-- `account_conversations`): one row per account, thread and set of other participants.
-- `conversation_id` is the id of the thread's root status (Mastodon keeps a separate
-- `conversations` table for the same purpose). `last_status_id` is the cursor of
-- `GET /api/v1/conversations`, as in Mastodon.
CREATE TABLE account_conversations (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id      bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    conversation_id bigint NOT NULL,
    -- The other participants, sorted, without the owner.
    participant_account_ids bigint[] NOT NULL,
    status_ids      bigint[] NOT NULL DEFAULT '{}',
    last_status_id  bigint NOT NULL,
    unread          boolean NOT NULL DEFAULT false,
    UNIQUE (account_id, conversation_id, participant_account_ids)
);
CREATE INDEX account_conversations_page ON account_conversations (account_id, last_status_id DESC);
