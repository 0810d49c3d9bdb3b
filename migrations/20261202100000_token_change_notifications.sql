-- Every change that can end or narrow what a bearer token grants is announced on the
-- channel `fedi_tokens`, so that api processes may keep verified tokens in memory
-- (instance/src/auth/token_cache.rs) and drop them the moment they stop being valid.
--
-- Announced by the database rather than by the code paths that revoke: a revocation that
-- forgot to tell the cache would leave a token usable (a password reset that does not end
-- the sessions is CVE-2025-62174). Here every path is covered, including the admin CLI, a
-- cascade from a deleted account or application, and SQL typed by an operator.
--
-- Payloads: `t <token id>`, `u <user id>`, `a <account id>`. They are delivered when the
-- transaction commits, in commit order, and only then.
--
-- The columns below are those `auth::token::resolve` reads: a column it starts reading
-- must be added here (tests/token_cache.rs checks each revocation path).
CREATE FUNCTION notify_token_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fedi_tokens', TG_ARGV[0] || ' ' || OLD.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER tokens_changed AFTER UPDATE OF token_hash, application_id, user_id, scopes,
        expires_at, revoked_at OR DELETE ON oauth_access_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_token_change('t');

CREATE TRIGGER token_users_changed AFTER UPDATE OF account_id, confirmed_at, approved, role
        OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_token_change('u');

-- Only local accounts have users, so only theirs can carry tokens (a domain suspended by
-- policy updates thousands of remote accounts).
CREATE TRIGGER token_accounts_changed AFTER UPDATE OF suspended_at OR DELETE ON accounts
    FOR EACH ROW WHEN (OLD.domain IS NULL) EXECUTE FUNCTION notify_token_change('a');

-- Also in sessions with `session_replication_role = replica` (pg_restore, logical
-- replication's apply, some bulk tools), where ordinary triggers stay silent.
ALTER TABLE oauth_access_tokens ENABLE ALWAYS TRIGGER tokens_changed;
ALTER TABLE users ENABLE ALWAYS TRIGGER token_users_changed;
ALTER TABLE accounts ENABLE ALWAYS TRIGGER token_accounts_changed;
