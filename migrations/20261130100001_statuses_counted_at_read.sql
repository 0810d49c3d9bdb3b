-- statuses_count and last_status_at go back to being counted when read (account_columns!):
-- kept by a trigger on statuses, they made every status insert update its author's row in
-- the posting transaction, which serialized an author's concurrent posts on that row and
-- cost PostgreSQL ~1.5 ms of CPU per POST /api/v1/statuses (8 connections posting as one
-- author: 390 -> 236 req/s). An author's statuses are few next to a popular account's
-- followers, whose counters (and follows' triggers) stay.
DROP TRIGGER statuses_counted_insert ON statuses;
DROP TRIGGER statuses_counted_delete ON statuses;
DROP FUNCTION accounts_count_statuses();
ALTER TABLE accounts DROP COLUMN statuses_count, DROP COLUMN last_status_at;
