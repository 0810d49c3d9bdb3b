-- Account counters (Mastodon's account_stats) kept as columns instead of counted on every
-- read: rendering a page of statuses counted each author's followers, follows and statuses
-- (an index scan over every follower of a popular account, per request).
--
-- Kept by statement-level triggers rather than by the write paths: follows and statuses
-- are written in many places (API, federation, cascades of account and domain blocks), and
-- a trigger cannot be forgotten by one of them. Statement-level with transition tables so
-- that a bulk insert (the benchmark seed, a backfill) updates each account once.
--
-- statuses_count counts every status of the account, reblogs and direct ones included, and
-- last_status_at is the creation time of its newest status (highest id), as the counts
-- they replace did.
ALTER TABLE accounts
    ADD COLUMN followers_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN following_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN statuses_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_status_at timestamptz;

-- One UPDATE per statement for both sides of the follows, in account id order: two
-- transactions following each other's accounts lock the two rows in the same order
-- instead of deadlocking.
CREATE FUNCTION accounts_count_follows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    step bigint := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    WITH changed AS (
        SELECT account_id AS id, 1 AS following, 0 AS followers FROM changed_follows
        UNION ALL
        SELECT target_account_id, 0, 1 FROM changed_follows
    ), delta AS (
        SELECT id, sum(following) AS following, sum(followers) AS followers
        FROM changed GROUP BY id ORDER BY id
    )
    UPDATE accounts a
       SET following_count = a.following_count + step * d.following,
           followers_count = a.followers_count + step * d.followers
      FROM delta d
     WHERE a.id = d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER follows_counted_insert AFTER INSERT ON follows
    REFERENCING NEW TABLE AS changed_follows
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_count_follows();
CREATE TRIGGER follows_counted_delete AFTER DELETE ON follows
    REFERENCING OLD TABLE AS changed_follows
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_count_follows();

-- last_status_at is read back from the account's newest status (one index probe per
-- account) rather than taken from the changed rows: deleting the newest status must bring
-- back the previous one's time.
CREATE FUNCTION accounts_count_statuses() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    step bigint := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    WITH delta AS (
        SELECT account_id AS id, count(*) AS n FROM changed_statuses
        GROUP BY account_id ORDER BY account_id
    )
    UPDATE accounts a
       SET statuses_count = a.statuses_count + step * d.n,
           last_status_at = (SELECT s.created_at FROM statuses s WHERE s.account_id = a.id
                             ORDER BY s.id DESC LIMIT 1)
      FROM delta d
     WHERE a.id = d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER statuses_counted_insert AFTER INSERT ON statuses
    REFERENCING NEW TABLE AS changed_statuses
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_count_statuses();
CREATE TRIGGER statuses_counted_delete AFTER DELETE ON statuses
    REFERENCING OLD TABLE AS changed_statuses
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_count_statuses();

-- The counts as of now. Triggers first, then the backfill, in the same transaction: no
-- write between the two is lost.
UPDATE accounts a SET
    followers_count = (SELECT count(*) FROM follows f WHERE f.target_account_id = a.id),
    following_count = (SELECT count(*) FROM follows f WHERE f.account_id = a.id),
    statuses_count = (SELECT count(*) FROM statuses s WHERE s.account_id = a.id),
    last_status_at = (SELECT s.created_at FROM statuses s WHERE s.account_id = a.id
                      ORDER BY s.id DESC LIMIT 1);
