-- Polls on statuses, their votes, and notifications.

-- A status's poll (Mastodon's polls): the options are the poll's, in order; a vote names an
-- option by its index. Tallies are counted from the votes rather than cached: a poll has
-- at most a few thousand local votes, and counts can then never drift.
CREATE TABLE polls (
    id                  bigint PRIMARY KEY DEFAULT fedi_id(),
    status_id           bigint NOT NULL UNIQUE REFERENCES statuses ON DELETE CASCADE,
    account_id          bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    -- Local polls are limited by the API; remote ones (federation) may carry more.
    options             text[] NOT NULL CHECK (cardinality(options) BETWEEN 1 AND 64),
    multiple            boolean NOT NULL DEFAULT false,
    hide_totals         boolean NOT NULL DEFAULT false,
    expires_at          timestamptz,
    -- When the "poll ended" notifications were made; NULL until then.
    ended_notified_at   timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Polls that ended and whose voters were not told yet.
CREATE INDEX polls_ending ON polls (expires_at)
    WHERE ended_notified_at IS NULL AND expires_at IS NOT NULL;

CREATE TABLE poll_votes (
    id          bigint PRIMARY KEY DEFAULT fedi_id(),
    poll_id     bigint NOT NULL REFERENCES polls ON DELETE CASCADE,
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    choice      integer NOT NULL CHECK (choice >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (poll_id, account_id, choice)
);
CREATE INDEX poll_votes_account ON poll_votes (account_id, poll_id);

-- A notification of `account_id` about something `from_account_id` did. Like Mastodon's
-- polymorphic `activity` with `dependent: :destroy`, each kind references the row that
-- caused it, so that undoing the action (unfavourite, unfollow, unreblog, an authorised or
-- rejected follow request, a deleted status or poll) removes the notification with it.
CREATE TABLE notifications (
    id                  bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id          bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    from_account_id     bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    type                text NOT NULL CHECK (type IN ('follow', 'follow_request', 'favourite',
                            'reblog', 'mention', 'poll', 'status', 'update')),
    -- The status shown with it (favourite, reblog: the original; mention, status, update,
    -- poll: the status itself).
    status_id           bigint REFERENCES statuses ON DELETE CASCADE,
    reblog_id           bigint UNIQUE REFERENCES statuses ON DELETE CASCADE,
    favourite_id        bigint UNIQUE REFERENCES favourites ON DELETE CASCADE,
    follow_id           bigint UNIQUE REFERENCES follows ON DELETE CASCADE,
    follow_request_id   bigint UNIQUE REFERENCES follow_requests ON DELETE CASCADE,
    poll_id             bigint REFERENCES polls ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now()
);
-- The list, newest first, and its `account_id=` filter.
CREATE INDEX notifications_account ON notifications (account_id, id DESC);
CREATE INDEX notifications_status ON notifications (status_id) WHERE status_id IS NOT NULL;
-- One mention notification per status and recipient (an edit re-reads the mentions), one
-- "poll ended" per poll and recipient.
CREATE UNIQUE INDEX notifications_mention ON notifications (account_id, status_id)
    WHERE type = 'mention';
CREATE UNIQUE INDEX notifications_poll ON notifications (account_id, poll_id)
    WHERE type = 'poll';
-- Deleting a poll (an edit that removes it) finds its notifications.
CREATE INDEX notifications_poll_id ON notifications (poll_id) WHERE poll_id IS NOT NULL;
