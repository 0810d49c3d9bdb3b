-- Mail the server wants sent (e-mail confirmations for now). Requests only write a row, in
-- the same transaction as what the mail is about, so that a failed request sends nothing
-- and a sent-but-rolled-back confirmation cannot happen; a worker delivers the rows.
CREATE TABLE outgoing_mail (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    to_address      text NOT NULL CHECK (length(to_address) BETWEEN 3 AND 320),
    subject         text NOT NULL CHECK (length(subject) <= 1000),
    -- May hold a one-time secret (a confirmation link): the worker should clear it once sent.
    body_text       text NOT NULL CHECK (length(body_text) <= 100000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX outgoing_mail_unsent ON outgoing_mail (id) WHERE sent_at IS NULL;
