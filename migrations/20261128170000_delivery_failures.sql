-- Outgoing delivery health per domain (Mastodon's DeliveryFailureTracker): the distinct days
-- on which deliveries to a domain failed, and the domains that failed on enough days to be
-- skipped until they answer again (a delivery that succeeds, or an activity they send us).

CREATE TABLE delivery_failure_days (
    domain      text NOT NULL CHECK (domain = lower(domain)),
    day         date NOT NULL,
    PRIMARY KEY (domain, day)
);

CREATE TABLE unavailable_domains (
    domain      text PRIMARY KEY CHECK (domain = lower(domain)),
    created_at  timestamptz NOT NULL DEFAULT now()
);
