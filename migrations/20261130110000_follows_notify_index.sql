-- Every status an author posts asks for the followers who want to be notified of it
-- (Mastodon's `notify` follows, FeedInsertWorker). Through follows_target that read every
-- follow of the author, a thousand rows per post of a popular account, inside the POST;
-- few follows have `notify`, so this index holds only them.
CREATE INDEX follows_notify ON follows (target_account_id) WHERE notify;
