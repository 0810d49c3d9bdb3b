-- Password reset by e-mail, as Devise's recoverable: one outstanding token per user (a new
-- request replaces it), stored as its SHA-256 digest, valid for six hours from sent_at and
-- cleared when used.
ALTER TABLE users
    ADD COLUMN reset_password_token_hash text UNIQUE,
    ADD COLUMN reset_password_sent_at    timestamptz;
