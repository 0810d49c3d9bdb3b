#!/usr/bin/env python3
"""SMTP sink for tests: accepts every message and stores it as an .eml file.

    smtp_sink.py --host 127.0.0.1 --port 12525 --maildir DIR

Each message accepted by DATA is written to DIR/<arrival-ns>-<uuid>.eml. The file is
first written under a dot-prefixed ".tmp" name in the same directory and then renamed,
so a reader globbing "*.eml" never sees a half-written message.

The stored bytes are the message exactly as the client sent it, preceded by two
envelope headers (the way an MTA adds Return-Path/Delivered-To on delivery), so tests
can assert on envelope recipients such as Bcc ones:

    X-Fedi-Envelope-From: <sender>
    X-Fedi-Envelope-To: <rcpt1>, <rcpt2>

AUTH PLAIN/LOGIN is offered without TLS and accepts any credentials, so a client that
is configured with a user name and password works too; nothing requires it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
import uuid

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

log = logging.getLogger("smtp_sink")


class MaildirHandler:
    def __init__(self, maildir: str) -> None:
        self.maildir = maildir

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # original_content: raw bytes as received (before any decoding by aiosmtpd).
        content = envelope.original_content or b""
        if isinstance(content, str):  # only when decode_data=True, kept for safety
            content = content.encode("utf-8", "surrogateescape")
        rcpts = ", ".join(envelope.rcpt_tos)
        header = (
            f"X-Fedi-Envelope-From: {envelope.mail_from or ''}\r\n"
            f"X-Fedi-Envelope-To: {rcpts}\r\n"
        ).encode("utf-8", "surrogateescape")

        name = f"{time.time_ns()}-{uuid.uuid4().hex}"
        tmp_path = os.path.join(self.maildir, f".{name}.tmp")
        final_path = os.path.join(self.maildir, f"{name}.eml")
        with open(tmp_path, "wb") as f:
            f.write(header)
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp_path, final_path)  # atomic within one directory
        log.info("stored %s from=%s to=%s (%d bytes)", final_path, envelope.mail_from, rcpts, len(content))
        return "250 Message accepted for delivery"


def accept_any_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    return AuthResult(success=True)


async def serve(args: argparse.Namespace) -> None:
    handler = MaildirHandler(args.maildir)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="fedi-smtp-sink",
            enable_SMTPUTF8=True,
            data_size_limit=64 * 1024 * 1024,
            authenticator=accept_any_login,
            auth_require_tls=False,
            auth_required=False,
        )

    server = await loop.create_server(factory, host=args.host, port=args.port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on %s:%d, storing mail in %s", args.host, args.port, args.maildir)
    await stop.wait()
    log.info("shutting down")
    server.close()
    await server.wait_closed()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12525)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiosmtpd logs every SMTP command at INFO ("mail.log"); keep only warnings.
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    os.makedirs(args.maildir, exist_ok=True)
    # The pid file is written by the launcher in lib.sh (the pid of this process).
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
