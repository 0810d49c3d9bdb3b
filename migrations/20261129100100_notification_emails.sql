-- The notification types a user is e-mailed about (Mastodon's `notification_emails`
-- settings); Mastodon's defaults: follows, follow requests and mentions, not boosts or
-- favourites. No REST endpoint sets them (Mastodon has none); an operator can, e.g.
--   UPDATE users SET notification_emails = notification_emails || '{favourite}' WHERE ...
ALTER TABLE users
    ADD COLUMN notification_emails text[] NOT NULL
        DEFAULT '{follow,follow_request,mention}'
        CHECK (notification_emails <@ '{follow,follow_request,mention,reblog,favourite}'::text[]);
