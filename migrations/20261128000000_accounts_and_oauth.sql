-- Accounts, their local users, and OAuth2 (applications, authorization codes, tokens).

-- Mastodon-style IDs: milliseconds since the epoch in the high bits, a 16-bit sequence in
-- the low ones, so that IDs sort by creation time and are unique across api replicas
-- (up to 65,536 per millisecond). Clients see them as strings.
CREATE SEQUENCE fedi_id_seq AS bigint CYCLE;

CREATE FUNCTION fedi_id() RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT (floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint << 16)
         | (nextval('fedi_id_seq') & 65535)
$$;

CREATE TABLE accounts (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    username        text NOT NULL CHECK (length(username) BETWEEN 1 AND 30),
    -- NULL for local accounts; the lower-cased host of remote ones.
    domain          text CHECK (domain IS NULL OR (domain = lower(domain) AND length(domain) <= 253)),
    display_name    text NOT NULL DEFAULT '' CHECK (length(display_name) <= 30),
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    locked          boolean NOT NULL DEFAULT false,
    bot             boolean NOT NULL DEFAULT false,
    discoverable    boolean NOT NULL DEFAULT true,
    -- Object keys in the media bucket.
    avatar_key      text,
    header_key      text,
    -- Profile metadata: [{"name": ..., "value": ...}], at most 4.
    fields          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(fields) = 'array'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    suspended_at    timestamptz
);
CREATE UNIQUE INDEX accounts_username_domain ON accounts (lower(username), coalesce(domain, ''));

CREATE TABLE users (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    account_id      bigint NOT NULL UNIQUE REFERENCES accounts ON DELETE CASCADE,
    email           text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    -- Argon2id, PHC string format.
    password_hash   text NOT NULL,
    locale          text NOT NULL DEFAULT 'en',
    -- Set when the e-mail address is confirmed; sign-in waits for it.
    confirmed_at    timestamptz,
    confirmation_token_hash text UNIQUE,
    -- False while registrations need approval and an admin has not approved.
    approved        boolean NOT NULL DEFAULT true,
    -- The sign-up reason, for approval-mode registrations.
    reason          text NOT NULL DEFAULT '' CHECK (length(reason) <= 1000),
    role            text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'moderator', 'admin', 'owner')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE oauth_applications (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    website         text CHECK (length(website) <= 2000),
    redirect_uris   text[] NOT NULL CHECK (cardinality(redirect_uris) BETWEEN 1 AND 16),
    scopes          text NOT NULL,
    client_id       text NOT NULL UNIQUE,
    -- The secret is shown once, at creation; only its SHA-256 is kept.
    client_secret_hash text NOT NULL,
    -- The user who registered it, when it was created with a user token.
    owner_user_id   bigint REFERENCES users ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE oauth_authorization_codes (
    code_hash       text PRIMARY KEY,
    application_id  bigint NOT NULL REFERENCES oauth_applications ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    redirect_uri    text NOT NULL,
    scopes          text NOT NULL,
    -- PKCE (RFC 7636): S256 only.
    code_challenge  text,
    expires_at      timestamptz NOT NULL,
    -- A code is good for one exchange.
    used_at         timestamptz
);

CREATE TABLE oauth_access_tokens (
    id              bigint PRIMARY KEY DEFAULT fedi_id(),
    token_hash      text NOT NULL UNIQUE,
    refresh_token_hash text UNIQUE,
    application_id  bigint NOT NULL REFERENCES oauth_applications ON DELETE CASCADE,
    -- NULL for client_credentials tokens (the application itself).
    user_id         bigint REFERENCES users ON DELETE CASCADE,
    scopes          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz
);
CREATE INDEX oauth_access_tokens_user ON oauth_access_tokens (user_id) WHERE revoked_at IS NULL;
