-- The languages a user reads on the public and hashtag timelines and streams (Mastodon's
-- `users.chosen_languages`); NULL: all of them. Never empty: "none chosen" is stored as NULL.
ALTER TABLE users
    ADD COLUMN chosen_languages text[]
        CHECK (chosen_languages IS NULL OR cardinality(chosen_languages) BETWEEN 1 AND 100);
