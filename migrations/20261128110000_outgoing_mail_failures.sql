-- Mail that can never be sent (an address the SMTP server refuses for good): recorded so
-- that the worker's sweep stops queueing it, and an admin can see why.
ALTER TABLE outgoing_mail
    ADD COLUMN failed_at timestamptz,
    ADD COLUMN error     text CHECK (length(error) <= 2000);
DROP INDEX outgoing_mail_unsent;
CREATE INDEX outgoing_mail_unsent ON outgoing_mail (id) WHERE sent_at IS NULL AND failed_at IS NULL;
