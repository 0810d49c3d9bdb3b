-- Mastodon's "hide your social graph": the actor's followers and following collections
-- show their sizes only. The federation documents honour it; the API's
-- `update_credentials` (`hide_collections`) sets it.
ALTER TABLE accounts ADD COLUMN hide_collections boolean NOT NULL DEFAULT false;
