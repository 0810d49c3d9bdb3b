"""Uses a running server with Mastodon.py the way an application built on it does: registers
an app and accounts, signs in, posts with an image, follows, searches, and pages the home
timeline. Prints what the library understood as JSON on stdout; the Rust test asserts it.

Usage:
  python mastodon_py_session.py register SERVER STATE_DIR CLIENT_IP USERNAME...
  python mastodon_py_session.py use SERVER STATE_DIR CLIENT_IP

`register` creates the app (kept in STATE_DIR) and one account per USERNAME; the test then
confirms them (as the e-mail link would) before `use` signs in and works with them.
The library talks to https://test.example, the instance's own URL, as it would in
production (it follows the URLs the server announces, such as the OAuth token endpoint);
a transport adapter given through the library's own `session` parameter carries those
requests to SERVER (http://127.0.0.1:PORT), as a TLS-terminating proxy would. CLIENT_IP
goes out as X-Forwarded-For, so that the server's rate limits count this run on their own
(the server trusts loopback as a proxy) and the library reads the rate-limit headers of
every answer.

Any exception, and any warning, fails the run with a non-zero exit.
"""

import json
import os
import struct
import sys
import time
import warnings
import zlib

import requests
from requests.adapters import HTTPAdapter
from mastodon import Mastodon

warnings.simplefilter("error")

SCOPES = ["read", "write", "follow"]
PASSWORD = "correct horse battery staple"


BASE_URL = "https://test.example"


class ToServer(HTTPAdapter):
    """Sends https://test.example/... to the test server over plain HTTP."""

    def __init__(self, server):
        super().__init__()
        self.server = server

    def send(self, request, **kwargs):
        request.url = self.server + request.url[len(BASE_URL):]
        return super().send(request, **kwargs)


def session(server, client_ip):
    s = requests.Session()
    s.mount(BASE_URL + "/", ToServer(server))
    s.headers["X-Forwarded-For"] = client_ip
    return s


def email(username):
    return f"{username}@mail.example"


def png(width, height, rgb):
    """A small valid PNG of one colour, so that the test needs no imaging library."""
    row = b"\x00" + bytes(rgb) * width
    raw = row * height

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def register(server, state_dir, client_ip, usernames):
    client_file = os.path.join(state_dir, "client.secret")
    Mastodon.create_app("fedi client test", scopes=SCOPES, api_base_url=BASE_URL,
                        to_file=client_file, session=session(server, client_ip))
    accounts = {}
    for username in usernames:
        api = Mastodon(client_id=client_file, api_base_url=BASE_URL,
                       session=session(server, client_ip))
        token = api.create_account(username, PASSWORD, email(username), agreement=True,
                                   locale="en", scopes=SCOPES)
        accounts[username] = {"token_issued": bool(token)}
    print(json.dumps({"accounts": accounts}))


def sign_in(server, state_dir, client_ip, username):
    api = Mastodon(client_id=os.path.join(state_dir, "client.secret"),
                   api_base_url=BASE_URL, session=session(server, client_ip))
    # The password grant, as Mastodon.py's log_in does with a username and password.
    api.log_in(username=email(username), password=PASSWORD, scopes=SCOPES)
    return api


def home_ids(api, expected, limit):
    """Pages the home timeline with `limit` and fetch_next until the end; waits (a fan-out
    may run in a worker) until the first page shows `expected` statuses at the top."""
    deadline = time.monotonic() + 20
    while True:
        first = api.timeline_home(limit=limit)
        if [s.id for s in first][:1] == expected[:1] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    pages = [[s.id for s in first]]
    page = first
    while True:
        page = api.fetch_next(page)
        if not page:
            break
        pages.append([s.id for s in page])
        if len(pages) > 20:
            raise RuntimeError("pagination does not end")
    return pages


def use(server, state_dir, client_ip):
    alice = sign_in(server, state_dir, client_ip, "alice")
    bob = sign_in(server, state_dir, client_ip, "bob")
    me = alice.me()
    bob_account = bob.me()

    # Bob posts before and after Alice follows him.
    early = [bob.status_post(f"early post {i} #pytest").id for i in range(2)]
    found = alice.account_search("bob")
    relationship = alice.account_follow(found[0].id)
    late = [bob.status_post(f"late post {i}").id for i in range(2)]

    image = png(40, 30, (200, 30, 60))
    media = alice.media_post(image, mime_type="image/png", description="a red rectangle",
                             file_name="red.png")
    own = alice.status_post("my picture", media_ids=[media.id], sensitive=False,
                            visibility="public")

    expected = [own.id] + late[::-1] + early[::-1]
    pages = home_ids(alice, expected, limit=2)
    again = alice.timeline_home(max_id=expected[1], limit=40)

    search = alice.search_v2("early", result_type="statuses")
    tags = alice.search_v2("#pyte", result_type="hashtags")
    people = alice.search_v2("bo", result_type="accounts")

    print(json.dumps({
        "me": {"username": me.username, "acct": me.acct},
        "bob": {"id": bob_account.id, "username": bob_account.username},
        "following": relationship.following,
        "media": {
            "type": media.type,
            "description": media.description,
            "width": media.meta.original.width,
            "height": media.meta.original.height,
            "url_is_https_or_http": media.url.startswith(("http://", "https://")),
            "blurhash": bool(media.blurhash),
        },
        "own": {
            "content": own.content,
            "media_ids": [m.id for m in own.media_attachments],
            "has_datetime": hasattr(own.created_at, "timestamp"),
        },
        "expected": expected,
        "pages": pages,
        "after_second": [s.id for s in again],
        "ratelimit": {"limit": alice.ratelimit_limit,
                      "remaining": alice.ratelimit_remaining,
                      "reset_in_future": alice.ratelimit_reset > time.time()},
        "search_statuses": sorted(s.id for s in search.statuses),
        "search_hashtags": [t.name for t in tags.hashtags],
        "search_accounts": [a.username for a in people.accounts],
    }))


def main():
    command, server, state_dir, client_ip = sys.argv[1:5]
    if command == "register":
        register(server, state_dir, client_ip, sys.argv[5:])
    elif command == "use":
        use(server, state_dir, client_ip)
    else:
        raise SystemExit(f"unknown command {command}")


main()
