-- Follow counters (Mastodon's account_stats) kept as columns instead of counted on every
-- read: rendering a page of statuses counted each author's followers and follows (an index
-- scan over every follower of a popular account, per request).
--
-- Kept by statement-level triggers rather than by the write paths: follows and statuses
-- are written in many places (API, federation, cascades of account and domain blocks), and
-- a trigger cannot be forgotten by one of them. Statement-level with transition tables so
-- that a bulk insert (the benchmark seed, a backfill) updates each account once.
--
-- statuses_count and last_status_at stay counted when read (account_columns!): kept by a
-- trigger on statuses, they made every status insert update its author's row in the
-- posting transaction, which serialized an author's concurrent posts on that row and cost
-- PostgreSQL ~1.5 ms of CPU per POST /api/v1/statuses (8 connections posting as one author:
-- 390 -> 236 req/s). An author's statuses are few next to a popular account's followers.
ALTER TABLE accounts
    ADD COLUMN followers_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN following_count bigint NOT NULL DEFAULT 0;

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

-- The counts as of now. Triggers first, then the backfill, in the same transaction: no
-- write between the two is lost.
UPDATE accounts a SET
    followers_count = (SELECT count(*) FROM follows f WHERE f.target_account_id = a.id),
    following_count = (SELECT count(*) FROM follows f WHERE f.account_id = a.id);
