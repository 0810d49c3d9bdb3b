-- Authors' status counts (Mastodon's account_stats.statuses_count) kept instead of counted
-- on every read. Counting at read cost a heap visit per status of every author on a page:
-- about 4 ms of PostgreSQL per home timeline page of authors with 100 statuses each, 85%
-- of the request's database time, and growing with each author's posts.
--
-- Kept without a lock on the author: a trigger that updated `accounts` in the posting
-- transaction serialized an author's concurrent posts on its row (see the migration
-- account_counters). Instead each statement on `statuses` appends its change per author to
-- `account_statuses_count_changes` (appends take no lock another writer waits on), and the
-- worker folds them into `accounts.statuses_count` every few seconds (`tasks::statuses_count`).
-- A read adds the changes not folded yet, so the count is exact whether or not the worker
-- runs: one snapshot sees a change either still pending or already folded, never both.
ALTER TABLE accounts ADD COLUMN statuses_count bigint NOT NULL DEFAULT 0;

-- No foreign key: the changes of an account's cascaded deletion are written after its row
-- is gone; the fold drops changes of accounts that no longer exist.
CREATE TABLE account_statuses_count_changes (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL,
    delta bigint NOT NULL
);
CREATE INDEX account_statuses_count_changes_account
    ON account_statuses_count_changes (account_id);

-- Statement-level with transition tables: a bulk insert (the benchmark seed, a backfill) or
-- a cascade appends one row per author, not one per status.
CREATE FUNCTION statuses_count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO account_statuses_count_changes (account_id, delta)
    SELECT account_id, CASE WHEN TG_OP = 'INSERT' THEN count(*) ELSE -count(*) END
      FROM changed_statuses
     GROUP BY account_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER statuses_counted_insert AFTER INSERT ON statuses
    REFERENCING NEW TABLE AS changed_statuses
    FOR EACH STATEMENT EXECUTE FUNCTION statuses_count_changes();
CREATE TRIGGER statuses_counted_delete AFTER DELETE ON statuses
    REFERENCING OLD TABLE AS changed_statuses
    FOR EACH STATEMENT EXECUTE FUNCTION statuses_count_changes();

-- The counts as of now. The triggers first, then the backfill, in the same transaction:
-- creating a trigger locks out writes to statuses until the migration commits, so no
-- status is counted twice or missed.
UPDATE accounts a SET statuses_count = c.n
  FROM (SELECT account_id, count(*) AS n FROM statuses GROUP BY account_id) c
 WHERE a.id = c.account_id;
