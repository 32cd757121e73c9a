"""Ed25519 keys and C2SP signed notes (https://c2sp.org/signed-note) for checkpoints.

A checkpoint is the note body ``<origin>\\n<size>\\n<base64 root>\\n`` (the C2SP
tlog-checkpoint layout, where our root is the chain hash of entry ``size``),
followed by a blank line and a signature line
``— <key name> <base64(key id || signature)>``. The key id is the first four
bytes of SHA-256(name || 0x0A || 0x01 || public key), 0x01 marking Ed25519.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.errors import AegisError

# cryptography is imported where keys are used: opening a ledger to append (every
# hook call) should not pay for it.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_KEY_FILE = "ledger.key"
VERIFIER_KEY_FILE = "ledger.vkey"
_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes_raw()


def ensure_signing_key(key_dir: Path, name: str) -> None:
    """Create ``key_dir/ledger.key`` (owner-only) and its C2SP verifier key if missing."""
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path = key_dir / PRIVATE_KEY_FILE
    if private_path.exists():
        return
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_b64(seed) + "\n")
    public = _raw_public(key.public_key())
    vkey = f"{name}+{_key_id(name, public).hex()}+{_b64(_ED25519 + public)}\n"
    (key_dir / VERIFIER_KEY_FILE).write_text(vkey)


@dataclass
class NoteSigner:
    """Signs checkpoint notes under the key name ``name``."""

    name: str
    key: Ed25519PrivateKey

    @classmethod
    def load(cls, key_dir: Path, name: str) -> NoteSigner:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        path = key_dir / PRIVATE_KEY_FILE
        try:
            seed = base64.b64decode(path.read_text().strip(), validate=True)
            return cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        except (OSError, ValueError) as exc:
            raise AegisError(f"{path}: cannot load the ledger signing key: {exc}") from None

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key.public_key())

    def sign(self, body: str) -> str:
        if not body.endswith("\n") or "\n\n" in body:
            raise ValueError("a note body is non-empty lines, each ending in a newline")
        public = _raw_public(self.key.public_key())
        signature = self.key.sign(body.encode())
        return f"{body}\n{_SIG_PREFIX}{self.name} {_b64(_key_id(self.name, public) + signature)}\n"


@dataclass
class NoteVerifier:
    """Checks notes signed by the key named ``name``."""

    name: str
    key: Ed25519PublicKey

    @classmethod
    def load(cls, key_dir: Path, name: str) -> NoteVerifier:
        """From the private key when readable, else from the verifier key file."""
        if os.access(key_dir / PRIVATE_KEY_FILE, os.R_OK):
            return NoteSigner.load(key_dir, name).verifier()
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        path = key_dir / VERIFIER_KEY_FILE
        try:
            key_name, _key_hash, encoded = path.read_text().strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
            if key_name != name or raw[:1] != _ED25519:
                raise ValueError(f"not the Ed25519 key {name!r}")
            return cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        except (OSError, ValueError) as exc:
            raise AegisError(f"{path}: cannot load the ledger verifier key: {exc}") from None

    def verify(self, note: str) -> str | None:
        """The note's body if one of its signatures is ours and valid, else None."""
        from cryptography.exceptions import InvalidSignature

        body, sep, signatures = note.partition("\n\n")
        if not sep:
            return None
        body += "\n"
        key_id = _key_id(self.name, _raw_public(self.key))
        for line in signatures.splitlines():
            prefix = f"{_SIG_PREFIX}{self.name} "
            if not line.startswith(prefix):
                continue
            try:
                blob = base64.b64decode(line[len(prefix):], validate=True)
            except ValueError:
                continue
            if blob[:4] != key_id:
                continue
            try:
                self.key.verify(blob[4:], body.encode())
            except InvalidSignature:
                continue
            return body
        return None


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{_b64(self.root)}\n"

    @classmethod
    def parse(cls, body: str) -> CheckpointBody:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise ValueError("a checkpoint needs origin, size and root lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise ValueError(f"bad tree size {size!r}")
        return cls(origin, int(size), base64.b64decode(root, validate=True))


def split_notes(text: str) -> list[str]:
    """The notes of a checkpoint file: notes written one after another, each followed
    by a blank line."""
    parts = text.split("\n\n")
    notes = []
    for i in range(0, len(parts) - 1, 2):
        notes.append(parts[i] + "\n\n" + parts[i + 1] + "\n")
    return notes
