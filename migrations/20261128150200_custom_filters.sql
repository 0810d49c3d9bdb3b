-- Users' content filters (Mastodon's v2 filters): a filter has contexts and an action, and
-- matches statuses by keyword or by id. Expired filters stay until deleted, matching nothing.
CREATE TABLE custom_filters (
    id            bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id    bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 256),
    context       text[] NOT NULL CHECK (cardinality(context) > 0 AND context <@
                      ARRAY['home', 'notifications', 'public', 'thread', 'account']),
    action        text NOT NULL DEFAULT 'warn' CHECK (action IN ('warn', 'hide')),
    expires_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX custom_filters_account ON custom_filters (account_id, id);

CREATE TABLE custom_filter_keywords (
    id               bigint PRIMARY KEY DEFAULT fedi_id(),
    custom_filter_id bigint NOT NULL REFERENCES custom_filters ON DELETE CASCADE,
    keyword          text NOT NULL CHECK (length(keyword) BETWEEN 1 AND 256),
    whole_word       boolean NOT NULL DEFAULT true
);
CREATE INDEX custom_filter_keywords_filter ON custom_filter_keywords (custom_filter_id, id);

CREATE TABLE custom_filter_statuses (
    id               bigint PRIMARY KEY DEFAULT fedi_id(),
    custom_filter_id bigint NOT NULL REFERENCES custom_filters ON DELETE CASCADE,
    status_id        bigint NOT NULL REFERENCES statuses ON DELETE CASCADE,
    UNIQUE (custom_filter_id, status_id)
);
