"""Drives tempmx's /compat/1secmail with the published 1secmail client tempmail-python
(control/tests/compat_1secmail.rs runs it). The client hard-codes its base URL
https://www.1secmail.com/api/v1/ in every call; the one change made here rewrites that
prefix to tempmx's base URL in requests' transport, and refuses any other URL, so nothing
leaves the loopback. Protocol on stdout: `READY <address>` (the Rust test then delivers
a mail over SMTP), then `RESULT <json>`."""

import json
import os
import sys

import requests.adapters

REAL = "https://www.1secmail.com/api/v1/"
BASE = os.environ["TEMPMX_BASE"] + "/compat/1secmail/api/v1/"
_send = requests.adapters.HTTPAdapter.send


def rebased_send(self, request, **kwargs):
    if not request.url.startswith(REAL):
        raise RuntimeError("unexpected URL " + request.url)
    request.url = BASE + request.url[len(REAL):]
    return _send(self, request, **kwargs)


requests.adapters.HTTPAdapter.send = rebased_send

from tempmail import EMail  # noqa: E402  (after the base URL is set)

out = {"domains": list(EMail.get_domains())}
mail = EMail()
out["address"] = mail.address
out["emptyInbox"] = len(mail.get_inbox())
print("READY " + mail.address, flush=True)
msg = mail.wait_for_message(timeout=30)
out["message"] = {
    "id": msg.id,
    "from": msg.from_addr,
    "subject": msg.subject,
    "date": msg.date.isoformat(),
    "textBody": msg.text_body,
    "htmlBody": msg.html_body,
    "body": msg.body,
}
info = mail.get_inbox()
out["inbox"] = [{"id": i.id, "subject": i.subject, "from": i.from_addr} for i in info]
out["attachments"] = [
    {"filename": a.filename, "contentType": a.content_type, "size": a.size}
    for a in msg.attachments
]
out["download"] = msg.attachments[0].download().decode() if msg.attachments else None
print("RESULT " + json.dumps(out), flush=True)
sys.exit(0)
