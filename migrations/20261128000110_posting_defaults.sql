-- A user's posting defaults, shown and edited as `source` in Mastodon's CredentialAccount.
ALTER TABLE users
    ADD COLUMN default_privacy text NOT NULL DEFAULT 'public'
        CHECK (default_privacy IN ('public', 'unlisted', 'private', 'direct')),
    ADD COLUMN default_sensitive boolean NOT NULL DEFAULT false,
    -- ISO 639 code; NULL lets clients guess.
    ADD COLUMN default_language text CHECK (length(default_language) BETWEEN 2 AND 3);
