"""`casework audit`: a case's history for auditors, and proof that nothing was altered."""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from casework.cli import console, fail, settings
from casework.groups import command_group

audit_app = command_group("Replay a case's history; prove nothing was altered.")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
PublicKey = Annotated[str | None, typer.Option(
    "--public-key", help="Trusted Ed25519 public key (base64 or PEM, or @FILE); default "
    "CASEWORK_AUDIT_PUBLIC_KEY or the signing key's own.")]


def _store() -> tuple[str, str | None]:
    """The store's URL and cipher key; a store that does not exist is refused, never created."""
    from casework.audit import CipherKeyError, check_cipher_key
    from shared.store import require_store

    config = settings()
    try:
        key = check_cipher_key(config.cipher_key) if config.cipher_key else None
    except CipherKeyError as error:
        fail(str(error))
        raise
    require_store(config.database_url)
    return config.database_url, key


def _stream(case_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(case_id)
    except ValueError:
        fail(f"{case_id!r} is not a case id (a UUID)")
        raise


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def _write(path: Path, text: str) -> None:
    """Write whole or not at all: a half-written proof is worse than none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _key_text(value: str | None) -> str | None:
    if value and value.startswith("@"):
        return Path(value[1:]).read_text()
    return value


def _verifier(public_key: str | None) -> Any:
    from casework.audit_sign import AuditKeyError, verifier_from_env

    try:
        return verifier_from_env(_key_text(public_key))
    except (AuditKeyError, ValueError, OSError) as error:
        fail(f"public key: {error}")


def _signer() -> Any:
    from casework.audit_sign import AuditKeyError, signer_from_env

    try:
        return signer_from_env()
    except (AuditKeyError, ValueError) as error:
        fail(f"signing key: {error}")


@audit_app.command("timeline")
def audit_timeline(
    case_id: Annotated[str, typer.Argument(help="The case's stream id (a UUID).")],
    as_json: JsonOption = False,
) -> None:
    """Every event of a stream, in order: when it happened and was recorded, who, what changed."""
    from casework.audit import timeline
    from casework.audit_render import render_timeline

    url, key = _store()
    story = timeline(url, _stream(case_id), key)
    if not story["events"]:
        fail(f"no stream {case_id}", code=1)
    if as_json:
        _print_json(story)
    else:
        render_timeline(console, story)


@audit_app.command("state")
def audit_state(
    case_id: Annotated[str, typer.Argument(help="The case's stream id (a UUID).")],
    at: Annotated[str | None, typer.Option("--at", help="ISO 8601 time with offset: the case "
                                           "as known then (events recorded at or before it).")] = None,
    version: Annotated[int | None, typer.Option("--version", min=1, help="The case at this version.")] = None,
    no_snapshots: Annotated[bool, typer.Option("--no-snapshots", help="Replay from the events only.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The case as it was known at a moment or at a version; without either, as it is now."""
    from casework.audit import parse_time
    from casework.audit_asof import AsOfReader
    from casework.audit_render import render_state

    if at is not None and version is not None:
        fail("give --at TIME or --version N, not both")
    try:
        moment = parse_time(at) if at else None
    except ValueError as error:
        fail(f"--at: {error}")
    url, key = _store()
    stream = _stream(case_id)
    reader = AsOfReader(url, key, use_snapshots=not no_snapshots)
    try:
        result = reader.at_time(stream, moment) if moment else reader.at_version(stream, version or LATEST)
    except Exception as error:  # a damaged stream cannot be replayed
        fail(f"cannot replay {case_id}: {type(error).__name__}: {error}; run `casework audit verify "
             f"{case_id}`", code=1)
    finally:
        reader.close()
    if result.aggregate is None:
        fail(f"case {case_id} was not yet known at {at}" if at else f"no stream {case_id}", code=1)
    if version is not None and result.version < version:
        fail(f"case {case_id} has {result.version} versions, not {version}", code=1)
    state = result.as_json(moment)
    _print_json(state) if as_json else render_state(console, state)


LATEST = 2**62  # a version past any stream's last: `audit state` without --at or --version


def _finish(result: Any, as_json: bool) -> NoReturn:
    from casework.audit_render import render_verification

    document = result.as_json()
    _print_json(document) if as_json else render_verification(console, document)
    raise typer.Exit(0 if result.intact else 1)


@audit_app.command("verify")
def audit_verify(
    stream_id: Annotated[str | None, typer.Argument(help="One stream (a UUID).")] = None,
    all_streams: Annotated[bool, typer.Option("--all", help="Every stream of the store.")] = False,
    checkpoint: Annotated[Path | None, typer.Option(help="A signed checkpoint to hold the store to.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Check a dispute file offline.")] = None,
    public_key: PublicKey = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute hash chains; name every edited, removed, reordered, inserted or truncated record.

    Exit 0 only when everything is intact, 1 when something is not, 2 on a usage error.
    """
    from casework.audit_chain import Finding
    from casework.audit_export import verify_export
    from casework.audit_sign import CheckpointRejected
    from casework.audit_verify import Verification, load_checkpoint, verify

    verifier = _verifier(public_key)
    if file is not None:
        if stream_id or all_streams or checkpoint:
            fail("--file is checked on its own")
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            fail(f"{file}: {error}")
        _finish(verify_export(document, verifier), as_json)
    if bool(stream_id) == all_streams:
        fail("name one STREAM_ID or --all")
    stream = _stream(stream_id) if stream_id else None
    url, key = _store()
    held = None
    if checkpoint is not None:
        try:
            held = load_checkpoint(checkpoint, verifier)
        except CheckpointRejected as error:
            forged = Finding("", None, "forged", f"checkpoint {checkpoint} rejected: {error}")
            _finish(Verification(findings=[forged]), as_json)
        except OSError as error:
            fail(f"{checkpoint}: {error}")
    _finish(verify(url, stream, held, key), as_json)


@audit_app.command("checkpoint")
def audit_checkpoint(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the checkpoint.")],
    as_json: JsonOption = False,
) -> None:
    """Verify the whole store, then sign the heads of all streams (refused if anything is broken)."""
    from casework.audit_render import render_verification
    from casework.audit_sign import make_checkpoint
    from casework.audit_verify import verify

    signer = _signer()
    url, key = _store()
    result = verify(url, None, None, key)
    if not result.intact:
        render_verification(console, result.as_json())
        fail("the store is not intact: no checkpoint signed", code=1)
    document = make_checkpoint(result.heads, signer, datetime.now(UTC))
    _write(output, json.dumps(document, ensure_ascii=False, indent=1) + "\n")
    summary = {"file": str(output), "created_at": document["created_at"],
               "streams": document["streams"], "digest": document["digest"],
               "key_id": document["signature"]["key_id"], "alg": document["signature"]["alg"]}
    _print_json(summary) if as_json else console.print(
        f"checkpoint of {summary['streams']} streams written to {output} (digest "
        f"{summary['digest'][:16]}…, {summary['alg']} key {summary['key_id']})")


@audit_app.command("export")
def audit_export(
    case_id: Annotated[str, typer.Argument(help="The case's stream id (a UUID).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The dispute file (JSON).")],
    html: Annotated[Path | None, typer.Option(help="The printable page (default: beside it, .html).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Attach this checkpoint's proof.")] = None,
    public_key: PublicKey = None,
) -> None:
    """A signed dispute file for outside parties, and a printable HTML page of the timeline."""
    from casework.audit import StoreReader
    from casework.audit_export import build_export, checkpoint_proof
    from casework.audit_html import render
    from casework.audit_render import render_verification
    from casework.audit_sign import CheckpointRejected
    from casework.audit_verify import verify

    signer = _signer()
    url, key = _store()
    stream = _stream(case_id)
    checked = verify(url, stream, None, key)
    if not checked.intact:
        render_verification(console, checked.as_json())
        fail(f"stream {case_id} is not intact: no dispute file signed", code=1)
    proof = None
    if checkpoint is not None:
        try:
            proof = checkpoint_proof(json.loads(checkpoint.read_text()), str(stream), _verifier(public_key))
        except (OSError, json.JSONDecodeError, CheckpointRejected) as error:
            fail(f"checkpoint {checkpoint}: {error}", code=1)
    reader = StoreReader(url, key)
    try:
        document = build_export(reader, stream, signer, datetime.now(UTC), proof)
    finally:
        reader.close()
    page = html or output.with_suffix(".html")
    _write(output, json.dumps(document, ensure_ascii=False, indent=1) + "\n")
    _write(page, render(document))
    console.print(f"dispute file {output} and page {page}: {len(document['events'])} events")


@audit_app.command("keygen")
def audit_keygen(
    cipher: Annotated[bool, typer.Option("--cipher", help="Also a new CASEWORK_CIPHER_KEY (AES-256).")] = False,
    as_json: JsonOption = False,
) -> None:
    """A new Ed25519 signing key pair (keep the first secret; publish the second)."""
    from eventsourcing.cipher import AESCipher

    from casework.audit_sign import keygen

    keys = keygen()
    if cipher:
        keys["CASEWORK_CIPHER_KEY"] = AESCipher.create_key(32)
    if as_json:
        _print_json(keys)
    else:
        sys.stdout.write("".join(f"{name}={value}\n" for name, value in keys.items()))


@audit_app.command("rekey")
def audit_rekey(
    new_key: Annotated[str, typer.Option("--new-key", envvar="CASEWORK_NEW_CIPHER_KEY",
                                         help="The new AES key (base64); empty: store in plaintext.")],
) -> None:
    """Re-encrypt the store from CASEWORK_CIPHER_KEY to a new key (stop intake first)."""
    from casework.audit import CipherKeyError
    from casework.audit_rekey import rekey
    from casework.audit_verify import verify

    url, old = _store()
    try:
        counts = rekey(url, old, new_key or None)
    except (CipherKeyError, ValueError) as error:
        fail(str(error))
    result = verify(url, None, None, new_key or None)
    console.print(f"re-encrypted {sum(counts.values())} records; verify: "
                  f"{'intact' if result.intact else 'NOT intact'}; now set CASEWORK_CIPHER_KEY to the new key")
    raise typer.Exit(0 if result.intact else 1)


@audit_app.command("reopenings")
def audit_reopenings(
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601 time with offset: count from "
                                              "here (recorded at or after).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601 time with offset: count up to "
                                              "here (recorded before).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Reopenings per branch: each counts against the branch that owned the case when it was reopened."""
    from rich.table import Table

    from casework.audit import parse_time
    from casework.reopenings import reopenings

    try:
        start, end = (parse_time(since) if since else None), (parse_time(until) if until else None)
    except ValueError as error:
        fail(f"--since/--until: {error}")
    url, key = _store()
    with console.status("reading the event log") as status:
        rows = reopenings(url, key, start, end, progress=lambda at: status.update(f"read up to position {at:,}"))
    if as_json:
        _print_json({"since": since, "until": until, "branches": rows})
        return
    span = (f" from {since}" if since else "") + (f" until {until}" if until else "")
    table = Table(title=f"Reopenings per branch{span}")
    for column in ("branch", "cases received", "reopenings", "cases reopened", "per case received"):
        table.add_column(column, justify="left" if column == "branch" else "right")
    for row in rows:
        share = row["reopenings_per_case_received"]
        table.add_row(row["branch_id"], str(row["received"]), str(row["reopenings"]), str(row["cases_reopened"]),
                      "–" if share is None else f"{share:.2f}")
    console.print(table)
