"""Run the real OpenID provider (tests/identity/oidc_provider.mjs, npm oidc-provider) for tests."""

from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "oidc_provider.mjs"
AUDIENCE = "urn:archive"


def ensure_installed() -> None:
    if not (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
        subprocess.run([str(HERE / "setup.sh")], check=True, timeout=600)


def rsa_jwk(kid: str | None = None) -> dict[str, Any]:
    """A private RSA JWK (as the provider's keystore wants it) with a fresh kid."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": kid or uuid.uuid4().hex[:12], "use": "sig", "alg": "RS256"}


def ec_jwk(kid: str | None = None) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": kid or uuid.uuid4().hex[:12], "use": "sig", "alg": "ES256"}


CLIENTS = [
    {"client_id": "reader", "client_secret": "reader-secret", "claims": {"roles": ["reader"]}},
    {"client_id": "site-a", "client_secret": "site-a-secret",
     "claims": {"roles": ["contributor"], "site": "SITE_A"}},
    {"client_id": "curator", "client_secret": "curator-secret",
     "claims": {"roles": "reader curator"}},
    {"client_id": "keycloak-style", "client_secret": "kc-secret",
     "claims": {"realm_access": {"roles": ["offline_access", "admin"]}, "org": {"site": "SITE_K"}}},
    {"client_id": "short", "client_secret": "short-secret", "claims": {"roles": ["reader"]},
     "ttl": 1},
]


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    """Forward the provider's output line by line ("" at EOF); also keeps its pipe drained."""
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put("")


def stable_port() -> int:
    """A free port below the kernel's ephemeral range (32768+): the provider restarts on its
    port when it rotates keys (the issuer URL names it), and a port from `free_port()` (an
    ephemeral one) can be handed to another test's server in that moment. Ports here are never
    handed out by the kernel, and the random start keeps parallel workers apart."""
    import random
    import socket

    start = random.randrange(20000, 32000)
    for port in range(start, start + 700):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32700")


@dataclass
class OidcProvider:
    """One node process serving discovery, JWKS and the token endpoint on a loopback port."""

    port: int
    keys: list[dict[str, Any]]
    alg: str = "RS256"
    proc: subprocess.Popen[str] | None = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="oidc-")))

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OidcProvider:
        cfg = self.tmp / "config.json"
        cfg.write_text(json.dumps({"port": self.port, "issuer": self.issuer, "alg": self.alg,
                                   "jwks": {"keys": self.keys}, "clients": CLIENTS,
                                   "default_resource": AUDIENCE}))
        self.proc = subprocess.Popen(["node", str(SCRIPT), str(cfg)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        # Wait for *this* process to say it listens: probing the port could be answered by
        # another test's server that took the port meanwhile (the likely cause of CI tokens signed
        # by a key this provider never had).
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc, lines), daemon=True).start()
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if not line:  # EOF: it exited (e.g. the port was taken)
                self.proc.wait(10)
                raise RuntimeError(f"oidc provider exited: {''.join(seen)}")
            if line.strip() == f"ready {self.issuer}":
                return self
            seen.append(line)
        self.stop()
        raise RuntimeError(f"oidc provider did not start in 30 s: {''.join(seen)}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def rotate(self, new_key: dict[str, Any]) -> None:
        """Restart with `new_key` signing and the old keys still published.

        The issuer URL names the port, so the restart must get the same port back; another test
        process probing for a free port may hold it for a moment (EADDRINUSE): retry briefly."""
        self.stop()
        self.keys = [new_key, *self.keys]
        for _ in range(60):
            try:
                self.start()
                return
            except RuntimeError as exc:
                if "EADDRINUSE" not in str(exc):
                    raise
                time.sleep(0.5)
        raise RuntimeError(f"port {self.port} stayed in use: cannot restart the provider")

    def token(self, client: str = "reader", resource: str | None = None) -> str:
        secret = next(c["client_secret"] for c in CLIENTS if c["client_id"] == client)
        data = {"grant_type": "client_credentials", "scope": "archive"}
        if resource:
            data["resource"] = resource
        r = requests.post(f"{self.issuer}/token", data=data, auth=(client, secret), timeout=10)
        r.raise_for_status()
        return str(r.json()["access_token"])
