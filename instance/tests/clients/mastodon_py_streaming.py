"""Streams one user's events with Mastodon.py from several streamers at once (server-sent
events, the library's default transport), and prints every event it understood as a JSON
line on stdout, tagged with the streamer it came through.

Usage: python mastodon_py_streaming.py TOKEN STREAMER_URL...

The instance's advertised streaming URL is `wss://<domain>`, which a test cannot reach, so
each client is pointed at its streamer directly. Runs until killed; an error in a stream
(a broken connection, an event the library cannot parse) is printed as {"error": ...}.
"""

import json
import sys
import threading

from mastodon import Mastodon, StreamListener

token, streamers = sys.argv[1], sys.argv[2:]
lock = threading.Lock()


def emit(obj):
    with lock:
        print(json.dumps(obj), flush=True)


class Listener(StreamListener):
    def __init__(self, via):
        super().__init__()
        self.via = via

    def on_update(self, status):
        emit({"via": self.via, "event": "update", "id": str(status.id),
              "account": status.account.acct, "content": status.content})

    def on_notification(self, notification):
        emit({"via": self.via, "event": "notification", "type": notification.type,
              "account": notification.account.acct,
              "status": str(notification.status.id) if notification.status else None})

    def on_delete(self, status_id):
        emit({"via": self.via, "event": "delete", "id": str(status_id)})

    def on_unknown_event(self, name, unknown_event=None):
        emit({"via": self.via, "event": name})

    def on_abort(self, err):
        emit({"via": self.via, "error": repr(err)})


handles = []
for i, base in enumerate(streamers):
    api = Mastodon(access_token=token, api_base_url=base, version_check_mode="none")
    # Name-mangled private attribute: where the library would otherwise ask the instance.
    api._Mastodon__streaming_base = base
    handles.append(api.stream_user(Listener(i), run_async=True))

threading.Event().wait()
