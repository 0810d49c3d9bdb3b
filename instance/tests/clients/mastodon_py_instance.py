"""Reads a running server's instance endpoints with Mastodon.py, the way applications built
on it do, and prints what the library understood as JSON on stdout.

Usage: python mastodon_py_instance.py BASE_URL

Any exception, and any warning (Mastodon.py warns, for instance, about a 4.3+ version
without `api_versions`), fails the run with a non-zero exit.
"""

import json
import sys
import warnings

from mastodon import Mastodon

warnings.simplefilter("error")

base_url = sys.argv[1]
# "created" makes the library fetch the instance and parse its version at once.
api = Mastodon(api_base_url=base_url, version_check_mode="created")
version = api.retrieve_mastodon_version(fail_hard=True)

v2 = api.instance()
v1 = api.instance_v1()
activity = api.instance_activity()

print(json.dumps({
    "version": version,
    "parsed": [api.mastodon_major, api.mastodon_minor, api.mastodon_patch],
    "api_version": api.mastodon_api_version,
    "v2_type": type(v2).__name__,
    "v2": {
        "domain": v2.domain,
        "title": v2.title,
        "streaming": v2.configuration.urls.streaming,
        "vapid": v2.configuration.vapid.public_key,
        "max_characters": v2.configuration.statuses.max_characters,
        "registrations_enabled": v2.registrations.enabled,
        "approval_required": v2.registrations.approval_required,
        "api_versions": dict(v2.api_versions),
        "rules": [r.text for r in v2.rules],
    },
    "v1": {
        "uri": v1.uri,
        "title": v1.title,
        "streaming_api": v1.urls.streaming_api,
        "user_count": v1.stats.user_count,
        "registrations": v1.registrations,
        "max_options": v1.configuration.polls.max_options,
    },
    "rules": [{"id": r.id, "text": r.text} for r in api.instance_rules()],
    "peers": list(api.instance_peers()),
    "activity_weeks": len(activity),
    "activity_first_week_is_datetime": hasattr(activity[0].week, "timestamp"),
    "custom_emojis": list(api.custom_emojis()),
    "healthy": api.instance_health(),
}))
