"""Signed checkpoints: the heads of all streams under a Merkle digest, signed with Ed25519 or HMAC."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import os
from base64 import b64decode, b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

CHECKPOINT_FORMAT = "casework-checkpoint/1"
SIGNING_KEY = "CASEWORK_AUDIT_SIGNING_KEY"
PUBLIC_KEY = "CASEWORK_AUDIT_PUBLIC_KEY"
HMAC_KEY = "CASEWORK_AUDIT_HMAC_KEY"


class AuditKeyError(ValueError):
    """Raised when no usable signing or verifying key is configured, or a key is malformed."""


class CheckpointRejected(ValueError):
    """Raised when a checkpoint's digest or signature does not hold: it was forged or edited."""


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return b64encode(data).decode()


def _key_bytes(text: str, what: str) -> bytes:
    try:
        return b64decode(text.strip().encode(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise AuditKeyError(f"{what} is neither PEM nor base64") from error


def load_private(text: str) -> Any:
    """An Ed25519 private key: PEM, or base64 of the raw 32-byte seed."""
    if "BEGIN" in text:
        return ECC.import_key(text)
    seed = _key_bytes(text, SIGNING_KEY)
    if len(seed) != 32:
        raise AuditKeyError(f"{SIGNING_KEY} holds {len(seed)} bytes; an Ed25519 seed has 32")
    return eddsa.import_private_key(seed)


def load_public(text: str) -> Any:
    """An Ed25519 public key: PEM, or base64 of the raw 32 bytes."""
    if "BEGIN" in text:
        return ECC.import_key(text)
    raw = _key_bytes(text, "the public key")
    if len(raw) != 32:
        raise AuditKeyError(f"the public key holds {len(raw)} bytes; an Ed25519 key has 32")
    return eddsa.import_public_key(raw)


def public_raw(key: Any) -> bytes:
    return bytes(key.public_key().export_key(format="raw"))


def key_id(material: bytes, alg: str) -> str:
    return hashlib.sha256(alg.encode() + b":" + material).hexdigest()[:16]


def keygen() -> dict[str, str]:
    """A new Ed25519 key pair, base64: the private seed for signers, the public key for anyone."""
    key = ECC.generate(curve="ed25519")
    return {SIGNING_KEY: _b64(bytes(key.seed)), PUBLIC_KEY: _b64(public_raw(key))}


@dataclass(frozen=True)
class Signer:
    """Signs with Ed25519 (outside parties verify with the public key) or with HMAC-SHA256."""

    alg: str
    secret: Any

    def sign(self, data: bytes) -> dict[str, str]:
        if self.alg == "ed25519":
            public = public_raw(self.secret)
            value = eddsa.new(self.secret, "rfc8032").sign(data)
            return {"alg": "ed25519", "key_id": key_id(public, "ed25519"),
                    "public_key": _b64(public), "value": _b64(value)}
        mac = hmac.new(self.secret, data, hashlib.sha256).digest()
        return {"alg": "hmac-sha256", "key_id": key_id(self.secret, "hmac"), "value": _b64(mac)}


def signer_from_env(env: Mapping[str, str] | None = None) -> Signer:
    env = os.environ if env is None else env
    if env.get(SIGNING_KEY):
        return Signer("ed25519", load_private(env[SIGNING_KEY]))
    if env.get(HMAC_KEY):
        return Signer("hmac-sha256", env[HMAC_KEY].encode())
    raise AuditKeyError(f"set {SIGNING_KEY} (Ed25519; `casework audit keygen` makes one) or {HMAC_KEY}")


@dataclass(frozen=True)
class Verifier:
    """The keys a verification trusts; a key embedded in a document is never trusted by itself."""

    public_keys: tuple[bytes, ...] = ()
    hmac_keys: tuple[bytes, ...] = ()

    def check(self, signature: Mapping[str, str], data: bytes) -> None:
        """Raise CheckpointRejected unless a trusted key made this signature over data."""
        try:
            value = b64decode(signature["value"], validate=True)
            alg = signature["alg"]
        except (KeyError, TypeError, binascii.Error, ValueError) as error:
            raise CheckpointRejected("the signature is malformed") from error
        if alg == "ed25519":
            if not self.public_keys:
                raise CheckpointRejected(f"no trusted Ed25519 public key: set {PUBLIC_KEY}")
            for raw in self.public_keys:
                try:
                    eddsa.new(eddsa.import_public_key(raw), "rfc8032").verify(data, value)
                except ValueError:
                    continue
                return
            raise CheckpointRejected("the signature was not made by a trusted key")
        if alg == "hmac-sha256":
            if not self.hmac_keys:
                raise CheckpointRejected(f"no HMAC key to check the signature with: set {HMAC_KEY}")
            if any(hmac.compare_digest(hmac.new(k, data, hashlib.sha256).digest(), value)
                   for k in self.hmac_keys):
                return
            raise CheckpointRejected("the HMAC does not match: wrong key or edited content")
        raise CheckpointRejected(f"unknown signature algorithm {alg!r}")


def verifier_from_env(public_key: str | None = None, env: Mapping[str, str] | None = None) -> Verifier:
    """Trust the given public key, CASEWORK_AUDIT_PUBLIC_KEY, the signing key's own, the HMAC key."""
    env = os.environ if env is None else env
    publics = [public_raw(load_public(text)) for text in (public_key, env.get(PUBLIC_KEY)) if text]
    if env.get(SIGNING_KEY):
        publics.append(public_raw(load_private(env[SIGNING_KEY])))
    hmacs = (env[HMAC_KEY].encode(),) if env.get(HMAC_KEY) else ()
    return Verifier(tuple(publics), hmacs)


# -- Merkle digest over the heads: one stream's head can be proven without the others -------
def leaf(stream_id: str, version: int, hash_: str) -> bytes:
    return hashlib.sha256(b"\x00" + f"{stream_id}:{version}:{hash_}".encode()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    levels = [leaves or [hashlib.sha256(b"").digest()]]
    while len(levels[-1]) > 1:
        level = levels[-1]
        # An odd node out is carried up unchanged.
        levels.append([_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                       for i in range(0, len(level), 2)])
    return levels


def merkle_proof(levels: list[list[bytes]], index: int) -> list[list[str]]:
    proof = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(["left" if sibling < index else "right", level[sibling].hex()])
        index //= 2
    return proof


def merkle_root_from(leaf_hash: bytes, proof: list[list[str]]) -> str:
    node = leaf_hash
    for side, sibling in proof:
        node = _node(bytes.fromhex(sibling), node) if side == "left" else _node(node, bytes.fromhex(sibling))
    return node.hex()


# -- checkpoints ------------------------------------------------------------------------------
def header_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """The signed part of a checkpoint; the heads are bound to it through the digest."""
    return {k: document[k] for k in ("format", "created_at", "streams", "digest")}


def make_checkpoint(heads: Mapping[str, tuple[int, str]], signer: Signer, now: datetime) -> dict[str, Any]:
    ordered = sorted(heads.items())
    rows = [{"stream_id": s, "version": v, "hash": h} for s, (v, h) in ordered]
    levels = merkle_levels([leaf(s, v, h) for s, (v, h) in ordered])
    header = {"format": CHECKPOINT_FORMAT, "created_at": now.isoformat(), "streams": len(rows),
              "digest": levels[-1][0].hex()}
    return {**header, "signature": signer.sign(canonical_json(header)), "heads": rows}


def check_checkpoint(document: Mapping[str, Any], verifier: Verifier) -> dict[str, tuple[int, str]]:
    """The heads a checkpoint vouches for; raises CheckpointRejected if it was tampered with."""
    try:
        if document["format"] != CHECKPOINT_FORMAT:
            raise CheckpointRejected(f"not a casework checkpoint ({document['format']!r})")
        header = header_of(document)
        rows = document["heads"]
        heads = {str(r["stream_id"]): (int(r["version"]), str(r["hash"])) for r in rows}
        leaves = [leaf(str(r["stream_id"]), int(r["version"]), str(r["hash"])) for r in rows]
        signature = document["signature"]
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, CheckpointRejected):
            raise
        raise CheckpointRejected(f"the checkpoint is malformed ({error})") from error
    if len(rows) != header["streams"] or len(heads) != len(rows):
        raise CheckpointRejected("the number of heads is not the one signed")
    if merkle_levels(leaves)[-1][0].hex() != header["digest"]:
        raise CheckpointRejected("the heads do not give the signed digest: they were edited")
    verifier.check(signature, canonical_json(header))
    return heads
