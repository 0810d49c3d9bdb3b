-- Each new status asks whether any follower, mention or replied-to account of it is a
-- remote account to deliver to (`federation::delivery::outgoing::has_remote_audience`),
-- inside the POST. Through accounts_pkey that fetched the row of every follower to read
-- its domain, inbox and suspension: 3-6 ms for an author with a thousand local followers
-- on the loaded bench machine. The deliverable remote accounts alone, in an index that
-- answers by itself, make it a lookup per follower into a smaller index, and nothing when
-- the instance knows no remote account.
CREATE INDEX accounts_deliverable ON accounts (id)
    WHERE domain IS NOT NULL AND inbox_url IS NOT NULL AND suspended_at IS NULL;
