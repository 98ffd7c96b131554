"""A printable HTML page of a dispute file: the timeline, pauses, escalations and proofs."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from typing import Any

STYLE = """
body { font: 11pt/1.4 "Noto Sans", "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2em; }
h1 { font-size: 16pt; margin-bottom: 0.2em; } h2 { font-size: 13pt; margin-top: 1.5em; }
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #999;
  padding: 3px 6px; vertical-align: top; text-align: left; font-size: 9.5pt; }
th { background: #eee; } tr { page-break-inside: avoid; }
.hash { font-family: monospace; font-size: 8pt; word-break: break-all; }
.meta td:first-child { width: 14em; font-weight: bold; }
@media print { body { margin: 1cm; } a { color: black; } }
"""

SKIP = ("principal", "user_id", "command_id", "branch_id")


def _when(text: str | None) -> str:
    if not text:
        return ""
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S %z")


def _details(content: dict[str, Any]) -> str:
    parts = []
    for key, value in content.items():
        if key in SKIP or value in (None, "", [], {}):
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"<b>{escape(key)}</b>: {escape(str(shown))}")
    return "<br>".join(parts)


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "still waiting at export"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min"


def render(document: dict[str, Any]) -> str:
    """The page; every value from the file is escaped."""
    head = document.get("head") or {}
    rows = "".join(
        f"<tr><td>{e['version']}</td><td>{escape(e['event'])}</td>"
        f"<td>{escape(_when(e['occurred_at']))}</td><td>{escape(_when(e['recorded_at']))}</td>"
        f"<td>{escape(str(e['content'].get('principal', '')))}<br>"
        f"<small>{escape(str(e['content'].get('user_id', '')))}</small></td>"
        f"<td>{_details(e['content'])}</td><td class=hash>{escape(e['hash'])}</td></tr>"
        for e in document.get("events", []))
    pauses = "".join(
        f"<tr><td>{p['from_version']}–{p['to_version'] or ''}</td><td>{escape(str(p['reason']))}</td>"
        f"<td>{escape(_when(p['since']))}</td><td>{escape(_when(p['until']))}</td>"
        f"<td>{_duration(p['seconds'])}</td></tr>" for p in document.get("pauses", []))
    escalations = "".join(
        f"<tr><td>{x['version']}</td><td>{escape(str(x['level']))}</td>"
        f"<td>{escape(str(x['department']))}</td><td>{escape(json.dumps(x['reason'], ensure_ascii=False))}</td>"
        f"<td>{escape(_when(x['at']))}</td><td>{escape(str(x['by']))}</td></tr>"
        for x in document.get("escalations", []))
    proof = document.get("checkpoint")
    signed = document.get("signature") or {}
    checkpoint = (f"Head of this stream at version {proof['head']['version']} is included in the "
                  f"signed checkpoint of {escape(_when(proof['header']['created_at']))} "
                  f"(digest <span class=hash>{escape(proof['header']['digest'])}</span>)."
                  if proof else "No checkpoint was attached to this file.")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>Case {escape(document['stream_id'])}</title><style>{STYLE}</style></head><body>
<h1>Case history (投诉案件记录) {escape(document['stream_id'])}</h1>
<table class=meta>
<tr><td>Exported at</td><td>{escape(_when(document['exported_at']))}</td></tr>
<tr><td>Events</td><td>{len(document.get('events', []))}, up to version {head.get('version')}</td></tr>
<tr><td>Head hash</td><td class=hash>{escape(str(head.get('hash')))}</td></tr>
<tr><td>Signed by key</td><td class=hash>{escape(signed.get('alg', ''))} {escape(signed.get('key_id', ''))}
{escape(signed.get('public_key', ''))}</td></tr>
<tr><td>Checkpoint</td><td>{checkpoint}</td></tr>
</table>
<h2>Timeline</h2>
<table><tr><th>v</th><th>event</th><th>happened</th><th>recorded</th><th>by</th><th>details</th>
<th>hash</th></tr>{rows}</table>
<h2>Waiting on the customer</h2>
<table><tr><th>versions</th><th>reason</th><th>from</th><th>until</th><th>lasted</th></tr>
{pauses or '<tr><td colspan=5>none</td></tr>'}</table>
<h2>Escalations</h2>
<table><tr><th>v</th><th>level</th><th>department</th><th>reason</th><th>at</th><th>by</th></tr>
{escalations or '<tr><td colspan=6>none</td></tr>'}</table>
<h2>How to check this file</h2>
<p>Each event's hash is SHA-256 over the previous hash and the event's canonical JSON, starting
from 64 zeros; the JSON file beside this page holds every hashed field. Check it offline with
<code>casework audit verify --file FILE --public-key KEY</code>, where KEY is the group's published
Ed25519 public key.</p>
</body></html>
"""
