-- The instance's domain blocks (FEDI_FEDERATION_DOMAIN_BLOCKS) applied to stored remote
-- accounts, as Mastodon's BlockDomainService does: a suspended domain's accounts are
-- suspended (their statuses no longer rendered anywhere), a silenced domain's accounts are
-- kept out of public timelines and of strangers' notifications. The settings live in the
-- environment, so lifting a block must undo only what the policy did:
-- `suspended_by_domain_policy` marks the suspensions it made (a moderator's suspension of
-- the same account stays). Only the policy silences, so `silenced_at` needs no marker.

ALTER TABLE accounts
    ADD COLUMN silenced_at timestamptz,
    ADD COLUMN suspended_by_domain_policy boolean NOT NULL DEFAULT false;

CREATE INDEX accounts_silenced ON accounts (id) WHERE silenced_at IS NOT NULL;
