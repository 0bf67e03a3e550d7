"""Settings: one frozen object, built once from flags, ARCHIVE_* variables and a TOML file.

Precedence (highest first): command-line flag, environment variable, TOML file, default.
Nothing here is mutable after load, so every component receives the same picture of the world.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from archive.errors import ConfigError

DUPLICATE_POLICIES = ("replace", "reject", "keep")


@dataclass(frozen=True, slots=True)
class Peer:
    """A known DICOM node: where C-MOVE sends, and which calling AE titles may associate."""

    ae_title: str
    host: str
    port: int
    site: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    http_port: int = 8080
    dimse_port: int = 11112
    ae_title: str = "ARCHIVE"
    data_dir: Path = Path("./archive-data")
    database_url: str | None = None
    peers: tuple[Peer, ...] = ()
    restrict_peers: bool = False
    duplicate_policy: str = "replace"
    max_request_bytes: int = 4 * 1024**3
    max_instance_bytes: int = 2 * 1024**3
    qido_max_limit: int = 1000
    cors_origin: str | None = None
    viewer_dir: Path | None = None
    default_collection: str = "public"
    curator_token: str | None = None
    curator_aets: tuple[str, ...] = ()
    min_cell_count: int = 0
    log_level: str = "INFO"
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_roles_claim: str = "roles"
    oidc_site_claim: str = "site"
    anonymous_role: str = "reader"
    audit_syslog: str | None = None
    release_workflow: bool = False  # contributed datasets are staged until a curator releases them
    sequester_fraction: float = 0.2  # share of new cases a release sequesters
    strata_attributes: tuple[str, ...] = (
        "site", "sex", "covid19_positive", "age", "race", "ethnicity", "modality")
    deidentify: str = "off"  # ingest profile for every site: basic (PS3.15 E.1) | off
    deidentify_site: tuple[tuple[str, str], ...] = ()  # per-site profile, overriding `deidentify`
    deidentify_secret: str | None = None  # keys the per-patient date shift and UID remapping
    log_format: str = "auto"  # human on a terminal, JSON lines otherwise
    public_url: str | None = None  # externally visible base, e.g. https://pacs.example.org
    trusted_proxies: tuple[str, ...] = ()  # addresses/CIDRs whose Forwarded headers count
    check_called_ae: bool = False  # reject associations addressed to another AE title
    storage: str = ""  # "" = the local filesystem in data_dir; or s3://BUCKET/PREFIX
    s3_endpoint: str | None = None  # for non-AWS stores (MinIO, Ceph RGW, SeaweedFS)
    s3_region: str | None = None
    s3_path_style: bool = False
    s3_read_timeout: float = 30.0  # seconds an object-store read may stall (then 503, or a cut body)
    curator_token_file: Path | None = None  # the curator token, read from a file (not argv)
    tls_cert: Path | None = None  # PEM certificate chain: HTTPS, and DICOM TLS
    tls_key: Path | None = None  # PEM private key for tls_cert
    dimse_tls_port: int | None = None  # a DICOM TLS listener (PS3.15 B.9 / BCP 195)
    dimse_tls_ca: Path | None = None  # CA bundle: DICOM TLS then requires client certificates
    # issue 13 limits (archive/cli_limits.py): safe defaults, each bounds memory or slots
    dimse_max_pdu: int = 1024 * 1024  # largest P-DATA PDU we accept (announced in A-ASSOCIATE-AC)
    dimse_idle_timeout: float = 60.0  # seconds an association may stay silent (network_timeout)
    dimse_artim_timeout: float = 30.0  # seconds to complete association set-up (ACSE / ARTIM)
    dimse_max_associations: int = 64  # concurrent associations overall
    max_stow_requests: int = 16  # concurrent STOW-RS requests; more wait their turn
    http_body_idle_timeout: float = 60.0  # seconds a STOW-RS body may stall (408 after)
    max_request_parts: int = 10000  # parts in one STOW-RS body (413 above)
    http_max_header_bytes: int = 8190  # longest request line / header field (aiohttp's default)
    db_idle_release_seconds: float = 10.0  # close pooled connections idle this long (0: never)
    # the portal's sign-in (issue 17): a public OIDC client (authorization code + PKCE) at
    # the --oidc-issuer; no client secret, the browser holds none
    portal_oidc_client_id: str | None = None
    portal_oidc_scope: str = "openid"
    # issue 15 task queue (archive/tasks/): serve runs jobs too unless told not to
    run_jobs: bool = True
    job_concurrency: int = 2  # jobs one node runs at once
    job_stalled_seconds: float = 30.0  # a worker silent this long is dead: its jobs are retried
    http_header_read_timeout: float = 30.0  # seconds to send complete request headers (408 after)
    dimse_max_associations_per_ae: int = 32  # concurrent associations of one calling AE (0: off)
    # memory diagnostics (archive/memtrace.py): tracemalloc snapshots while serving; off
    memtrace_dir: Path | None = None
    memtrace_every_seconds: float = 300.0
    # glibc malloc (archive/allocator.py): a flat RSS under load; 0 leaves glibc's defaults
    malloc_arena_max: int = 2
    malloc_trim_seconds: float = 60.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def deidentify_profile(self, site: str | None) -> str:
        """The ingest de-identification profile of a site (its own entry, else the default)."""
        for name, profile in self.deidentify_site:
            if name == site:
                return profile
        return self.deidentify

    def peer(self, ae_title: str) -> Peer | None:
        for p in self.peers:
            if p.ae_title == ae_title.strip():
                return p
        return None

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "postgres"


# name -> (environment variable, parser)
def _bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"not a boolean: {v!r}")


def parse_peer(text: str) -> Peer:
    """Parse ``AET=HOST:PORT`` or ``AET=HOST:PORT@SITE``."""
    try:
        aet, rest = text.split("=", 1)
        site = None
        if "@" in rest:
            rest, site = rest.split("@", 1)
        host, port = rest.rsplit(":", 1)
        aet = aet.strip()
        if not aet or len(aet) > 16:
            raise ValueError("AE title must be 1-16 characters")
        return Peer(aet, host.strip(), int(port), site or None)
    except ValueError as exc:
        raise ConfigError(f"bad peer {text!r}: expected AET=HOST:PORT[@SITE] ({exc})") from exc


def _peers(v: str | list[str]) -> tuple[Peer, ...]:
    items = v if isinstance(v, list) else [s for s in v.split(",") if s.strip()]
    return tuple(parse_peer(s) for s in items)


def _port(v: str) -> int:
    n = int(v)
    if not 0 <= n <= 65535:
        raise ConfigError(f"port out of range: {v}")
    return n


def _anonymous_role(v: str) -> str:
    if v not in ("reader", "none"):
        raise ConfigError(f"anonymous role must be reader or none, not {v!r}")
    return v


def _host_port(v: str) -> str | None:
    if not v:
        return None
    host, sep, port = v.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"expected HOST:PORT, not {v!r}")
    _port(port)
    return v


def _fraction(v: str) -> float:
    f = float(v)
    if not 0.0 <= f <= 1.0:
        raise ConfigError(f"sequester fraction must be within [0, 1], not {v}")
    return f


STRATA_ATTRIBUTES = ("site", "sex", "covid19_positive", "age", "race", "ethnicity", "modality")


def _strata(v: str | list[str]) -> tuple[str, ...]:
    items = v if isinstance(v, list) else v.split(",")
    names = tuple(s.strip() for s in items if s.strip())
    unknown = [n for n in names if n not in STRATA_ATTRIBUTES]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"strata attributes must be distinct names among {STRATA_ATTRIBUTES}, "
                          f"not {v!r}")
    return names


DEIDENTIFY_PROFILES = ("basic", "off")


def _profile(v: str) -> str:
    if v not in DEIDENTIFY_PROFILES:
        raise ConfigError(f"de-identification profile must be one of {DEIDENTIFY_PROFILES}, "
                          f"not {v!r}")
    return v


def _site_profiles(v: str | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """`SITE=basic,OTHER=off` (flag, variable) or a TOML table {SITE = "basic"}."""
    if isinstance(v, Mapping):
        pairs = [(str(k), str(p)) for k, p in v.items()]
    else:
        pairs = []
        for item in (s.strip() for s in v.split(",") if s.strip()):
            site, sep, profile = item.partition("=")
            if not sep or not site.strip():
                raise ConfigError(f"expected SITE=basic|off, not {item!r}")
            pairs.append((site.strip(), profile.strip()))
    return tuple((site, _profile(p)) for site, p in pairs)


def _cell_count(v: str) -> int:
    n = int(v)
    if n < 0:
        raise ConfigError(f"min cell count must be 0 (off) or more, not {v}")
    return n


def _policy(v: str) -> str:
    if v not in DUPLICATE_POLICIES:
        raise ConfigError(f"duplicate policy must be one of {DUPLICATE_POLICIES}, not {v!r}")
    return v


LOG_FORMATS = ("auto", "human", "json")


def _log_format(v: str) -> str:
    if v not in LOG_FORMATS:
        raise ConfigError(f"log format must be one of {LOG_FORMATS}, not {v!r}")
    return v


def _public_url(v: str) -> str | None:
    """`scheme://host[:port][/prefix]`, no trailing slash; the base of every URL we hand out."""
    if not v:
        return None
    parsed = urlsplit(v)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query:
        raise ConfigError(f"public URL must look like https://host[:port][/prefix], not {v!r}")
    return v.rstrip("/")


def _networks(v: str | list[str]) -> tuple[str, ...]:
    """Comma-separated addresses or CIDRs, validated now so a typo fails at start-up."""
    items = v if isinstance(v, list) else v.split(",")
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise ConfigError(f"trusted proxy {item!r} is not an address or CIDR") from exc
    return tuple(out)


def _storage(v: str) -> str:
    if v and not v.startswith("s3://"):
        raise ConfigError(f"storage must be s3://BUCKET/PREFIX or empty (local files), not {v!r}")
    return v


def _positive_int(v: str) -> int:
    n = int(v)
    if n < 1:
        raise ConfigError(f"must be at least 1, not {v!r}")
    return n


def _positive_float(v: str) -> float:
    x = float(v)
    if x <= 0:
        raise ConfigError(f"must be more than 0, not {v!r}")
    return x


PARSERS: dict[str, Any] = {
    "host": str,
    "http_port": _port,
    "dimse_port": _port,
    "ae_title": str,
    "data_dir": Path,
    "database_url": lambda v: v or None,
    "peers": _peers,
    "restrict_peers": _bool,
    "duplicate_policy": _policy,
    "max_request_bytes": int,
    "max_instance_bytes": int,
    "qido_max_limit": int,
    "cors_origin": lambda v: v or None,
    "viewer_dir": lambda v: Path(v) if v else None,
    "default_collection": str,
    "curator_token": lambda v: v or None,
    "curator_aets": lambda v: tuple(
        s.strip() for s in (v if isinstance(v, list) else v.split(",")) if s.strip()
    ),
    "log_level": str,
    "oidc_issuer": lambda v: v or None,
    "oidc_audience": lambda v: v or None,
    "oidc_roles_claim": str,
    "oidc_site_claim": str,
    "anonymous_role": _anonymous_role,
    "audit_syslog": _host_port,
    "release_workflow": _bool,
    "sequester_fraction": _fraction,
    "strata_attributes": _strata,
    "deidentify": _profile,
    "deidentify_site": _site_profiles,
    "deidentify_secret": lambda v: v or None,
    "log_format": _log_format,
    "public_url": _public_url,
    "trusted_proxies": _networks,
    "check_called_ae": _bool,
    "min_cell_count": _cell_count,
    "storage": _storage,
    "s3_endpoint": lambda v: v or None,
    "s3_region": lambda v: v or None,
    "s3_path_style": _bool,
    "s3_read_timeout": _positive_float,
    "curator_token_file": lambda v: Path(v) if v else None,
    "tls_cert": lambda v: Path(v) if v else None,
    "tls_key": lambda v: Path(v) if v else None,
    "dimse_tls_port": lambda v: _port(v) if v not in ("", None) else None,
    "dimse_tls_ca": lambda v: Path(v) if v else None,
    "dimse_max_pdu": int,
    "dimse_idle_timeout": float,
    "dimse_artim_timeout": float,
    "dimse_max_associations": int,
    "max_stow_requests": int,
    "max_request_parts": int,
    "http_body_idle_timeout": float,
    "http_max_header_bytes": int,
    "db_idle_release_seconds": float,
    "portal_oidc_client_id": lambda v: v or None,
    "portal_oidc_scope": lambda v: " ".join(str(v).split()) or "openid",
    "run_jobs": _bool,
    "job_concurrency": _positive_int,
    "job_stalled_seconds": _positive_float,
    "http_header_read_timeout": float,
    "dimse_max_associations_per_ae": int,
    "memtrace_dir": lambda v: Path(v) if v else None,
    "memtrace_every_seconds": _positive_float,
    "malloc_arena_max": int,
    "malloc_trim_seconds": float,
}


def _secrets(values: dict[str, Any]) -> None:
    """Secrets come from the environment or from files, never from argv: read the token file."""
    path = values.get("curator_token_file")
    if path is None:
        return
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the curator token file {path}: {exc}") from exc
    if not token:
        raise ConfigError(f"the curator token file {path} is empty")
    values["curator_token"] = token


def _tls(values: dict[str, Any]) -> None:
    if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        raise ConfigError("--tls-cert and --tls-key go together")
    if (values.get("dimse_tls_port") or values.get("dimse_tls_ca")) and not values.get("tls_cert"):
        raise ConfigError("--dimse-tls-port and --dimse-tls-ca need --tls-cert and --tls-key")


def env_name(name: str) -> str:
    return "ARCHIVE_" + name.upper()


def load(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
) -> Settings:
    """Build Settings; unknown TOML keys are an error so typos do not silently fall back."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    toml_path = toml_path or (Path(environ["ARCHIVE_CONFIG"]) if "ARCHIVE_CONFIG" in environ else None)
    extra: dict[str, Any] = {}
    if toml_path is not None:
        try:
            data = tomllib.loads(Path(toml_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {toml_path}: {exc}") from exc
        for key, raw in data.items():
            if key in PARSERS:
                values[key] = PARSERS[key](raw if not isinstance(raw, int | bool) else str(raw))
            elif isinstance(raw, dict):
                extra[key] = raw
            else:
                raise ConfigError(f"unknown setting {key!r} in {toml_path}")
    for name, parse in PARSERS.items():
        if env_name(name) in environ:
            try:
                values[name] = parse(environ[env_name(name)])
            except ValueError as exc:
                raise ConfigError(f"{env_name(name)}: {exc}") from exc
    for name, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        values[name] = PARSERS[name](value) if isinstance(value, str) and name != "peers" else value
    if extra:
        values["extra"] = extra
    _secrets(values)
    _tls(values)
    return dataclasses.replace(Settings(), **values)
