#!/usr/bin/env python3
"""Writes sample-audit-log.json: one working day of a small Slack Enterprise Grid org as
the Audit Logs API returns it (envelope, newest first), with Slack's quirks, and three
download bursts: alice (an attack: 60 files in 5 minutes from a new address), dave (an
allowlisted IT admin's bulk export) and a partner's external account."""
import json
import random

random.seed(7)
BASE = 1767603600  # 2026-01-05T09:00:00Z
USERS = [("W01ALICE", "alice", "alice@acme.example"), ("W02BOB", "bob", "bob@acme.example"),
         ("W03CAROL", "carol", "carol@acme.example"), ("W04DAVE", "dave", "dave@acme.example")]
PARTNER = ("W09PARTNER", "pat", "pat@partner.example")
LOC = {"type": "enterprise", "id": "E0ACME", "name": "Acme", "domain": "acme"}
entries = []


def entry(t, action, u, entity=None, ip="198.51.100.10",
          ua="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) Slack/4.36", sid=1000, details=None):
    n = len(entries) + 1
    e = {"id": f"5f0c{n:04d}-aer0-4e1a-9c3b-sample{n:06d}", "date_create": t, "action": action,
         "actor": {"type": "user", "user": {"id": u[0], "name": u[1], "email": u[2], "team": "T0ACME"}},
         "context": {"location": LOC, "ua": ua, "ip_address": ip, "session_id": sid}}
    if entity:
        e["entity"] = entity
    if details:
        e["details"] = details
    entries.append(e)
    return e


def user_entity(u):
    return {"type": "user", "user": {"id": u[0], "name": u[1], "email": u[2], "team": "T0ACME"}}


def file_entity(i):
    return {"type": "file", "file": {"id": f"F0{i:05d}", "name": f"report-{i}.pdf", "filetype": "pdf",
                                     "title": f"Report {i}"}}


for i, u in enumerate(USERS):
    entry(BASE + i * 60, "user_login", u, user_entity(u), ip=f"198.51.100.{10 + i}", sid=1000 + i)
t = BASE + 600
for k in range(40):
    u = random.choice(USERS)
    entry(t, "file_downloaded", u, file_entity(random.randint(1, 500)), ip=f"198.51.100.{10 + USERS.index(u)}")
    t += random.randint(200, 900)
# Quirks: an app action with a null session and an empty user agent, a string date, a
# malformed IP address, and Slack's own anomaly entry with a list of reasons.
e = entry(BASE + 1200, "app_installed", USERS[3],
          {"type": "app", "app": {"id": "A0BOT", "name": "Deploy Bot", "is_distributed": False, "scopes": ["chat:write"]}},
          ua="", details={"new_scopes": ["chat:write"]})
e["context"]["session_id"] = None
e = entry(BASE + 1500, "user_login", USERS[2], ip="1.23.45.678")
e["date_create"] = str(BASE + 1500)
entry(BASE + 1800, "anomaly", USERS[1], user_entity(USERS[1]), ip="185.220.101.4",
      details={"reason": ["tor"], "action_timestamp": (BASE + 1800) * 1000000})
# The attack: alice downloads 60 files in 5 minutes from a new address, then exports.
burst = BASE + 5 * 3600
for i in range(60):
    entry(burst + i * 5, "file_downloaded", USERS[0], file_entity(1000 + i), ip="203.0.113.50", sid=9999)
entry(burst + 400, "channels_export_started", USERS[0], None, ip="203.0.113.50", sid=9999)
# Dave, the IT admin on the allowlist, pulls a legitimate bulk export.
for i in range(55):
    entry(BASE + 6 * 3600 + i * 4, "file_downloaded", USERS[3], file_entity(2000 + i), ip="198.51.100.13", sid=1003)
# A partner's external (Slack Connect) account downloads shared files in bulk.
for i in range(55):
    e = entry(BASE + 7 * 3600 + i * 4, "file_downloaded", PARTNER, file_entity(3000 + i), ip="192.0.2.44", sid=5005)
    e["actor"]["user"]["team"] = "T0PARTNER"
entries.sort(key=lambda e: int(e["date_create"]), reverse=True)  # newest first, as Slack returns them
doc = {"ok": True, "entries": entries, "response_metadata": {"next_cursor": ""}}
with open("sample-audit-log.json", "w") as f:
    f.write(json.dumps(doc, indent=1) + "\n")
print(len(entries), "entries")
