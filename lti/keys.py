"""The tool's RSA signing keys on disk: created on first start, rotated with a grace period.

`keys/keyring.json` lists the keys; each private key is `keys/<kid>.pem` (mode 600, never
committed). The current key signs; a previous key stays published in the JWKS until its
`retire_at`, so platforms that cached our key set keep verifying tokens signed before a rotation.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK

MANIFEST = "keyring.json"


@dataclass(frozen=True)
class ToolKey:
    kid: str
    private_pem: str
    public_jwk: dict
    created_at: float
    retire_at: float | None  # None: the current signing key


def _thumbprint_jwk(private_pem: bytes) -> tuple[str, dict]:
    key = JWK.from_pem(private_pem)
    kid = key.thumbprint()  # RFC 7638, SHA-256, base64url
    public = json.loads(key.export_public())
    public.update(kid=kid, alg="RS256", use="sig")
    return kid, public


class KeyRing:
    """Read, create and rotate the tool's keys in one directory, safe across processes."""

    def __init__(self, directory: str | os.PathLike, key_size: int = 2048):
        self.directory = Path(directory)
        self.key_size = key_size
        self._cache: tuple[float, list[ToolKey]] | None = None

    @contextmanager
    def _locked(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def _read_manifest(self) -> list[dict]:
        path = self._manifest_path()
        if not path.exists():
            return []
        return json.loads(path.read_text()).get("keys", [])

    def _write_manifest(self, entries: list[dict]) -> None:
        tmp = self._manifest_path().with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": entries}, indent=2))
        os.replace(tmp, self._manifest_path())

    def _new_key_entry(self) -> dict:
        private = rsa.generate_private_key(public_exponent=65537, key_size=self.key_size)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        kid, _ = _thumbprint_jwk(pem)
        path = self.directory / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return {"kid": kid, "file": path.name, "created_at": time.time(), "retire_at": None}

    def ensure(self) -> None:
        """Create a first key when the ring is empty."""
        with self._locked():
            if not any(e["retire_at"] is None for e in self._read_manifest()):
                entries = self._read_manifest() + [self._new_key_entry()]
                self._write_manifest(entries)
        self._cache = None

    def rotate(self, grace_seconds: float) -> str:
        """Make a new current key; the old one stays published for grace_seconds. Return the new kid."""
        with self._locked():
            entries = self._read_manifest()
            now = time.time()
            for entry in entries:
                if entry["retire_at"] is None:
                    entry["retire_at"] = now + grace_seconds
            new = self._new_key_entry()
            self._write_manifest(entries + [new])
        self._cache = None
        return new["kid"]

    def retire_expired(self) -> list[str]:
        """Delete keys whose grace period is over; return their kids."""
        with self._locked():
            now = time.time()
            keep, gone = [], []
            for entry in self._read_manifest():
                (gone if entry["retire_at"] is not None and entry["retire_at"] <= now else keep).append(entry)
            for entry in gone:
                (self.directory / entry["file"]).unlink(missing_ok=True)
            self._write_manifest(keep)
        self._cache = None
        return [e["kid"] for e in gone]

    def keys(self) -> list[ToolKey]:
        """Every key still published, current first; reloaded when the manifest changes on disk."""
        try:
            mtime = self._manifest_path().stat().st_mtime_ns
        except FileNotFoundError:
            self.ensure()
            mtime = self._manifest_path().stat().st_mtime_ns
        if self._cache is None or self._cache[0] != mtime:
            loaded = []
            for entry in self._read_manifest():
                pem = (self.directory / entry["file"]).read_bytes()
                kid, public = _thumbprint_jwk(pem)
                loaded.append(ToolKey(kid, pem.decode(), public, entry["created_at"], entry["retire_at"]))
            loaded.sort(key=lambda k: (k.retire_at is not None, -k.created_at))
            self._cache = (mtime, loaded)
        now = time.time()
        return [k for k in self._cache[1] if k.retire_at is None or k.retire_at > now]

    def current(self) -> ToolKey:
        """Return the key that signs, creating one if there is none."""
        keys = self.keys()
        if not keys or keys[0].retire_at is not None:
            self.ensure()
            keys = self.keys()
        return keys[0]

    def jwks(self) -> dict:
        """Return the public key set: every published key with kid, alg and use."""
        return {"keys": [k.public_jwk for k in self.keys()]}
