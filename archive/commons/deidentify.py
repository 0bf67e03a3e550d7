"""Optional de-identification at ingest (issue 16): `--deidentify basic|off`, per site.

A pre-store hook (archive.core.Extensions.pre_store): when the contributing site's profile is
`basic`, the spooled instance is rewritten by archive.curation.phi.deidentify — PS3.15 E.1
Basic Profile through dicognito, UIDs remapped consistently and dates shifted per patient, both
keyed by `--deidentify-secret` and the site's patient id — and the rewritten file is what gets
parsed, stored and indexed. The original never reaches storage. The site is decided exactly as
ingest attributes it (the caller's site, the calling AE title's peer entry, else the AE title).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from archive.config import Settings
from archive.core import Caller, Core
from archive.curation.phi import DeidSettings, deidentify
from archive.errors import ConfigError, InvalidInstance
from storage.base import Spooled


def site_of(settings: Settings, caller: Caller) -> str | None:
    peer = settings.peer(caller.ae_title) if caller.ae_title else None
    return caller.site or (peer.site if peer else None) or caller.ae_title


def check(settings: Settings) -> bool:
    """Whether any site is de-identified; ConfigError when one is but no secret is set."""
    used = settings.deidentify == "basic" or any(p == "basic" for _, p in settings.deidentify_site)
    if used and not settings.deidentify_secret:
        raise ConfigError("--deidentify basic needs --deidentify-secret (ARCHIVE_DEIDENTIFY_SECRET):"
                          " it keys the per-patient date shift and UID remapping")
    return used


def _rewrite(source: Path, target: Path, site: str | None, secret: str) -> None:
    import pydicom

    try:
        ds = pydicom.dcmread(source, force=True)  # parsed and validated already
        patient_key = f"{site or ''}\x00{ds.get('PatientID', '')}"
        out = deidentify(ds, patient_key, DeidSettings(secret=secret))
        out.save_as(target, enforce_file_format=True)
    except InvalidInstance:
        raise
    except Exception as exc:  # dicognito/pydicom on a file that parsed but cannot be rewritten
        target.unlink(missing_ok=True)
        raise InvalidInstance(f"cannot de-identify this instance: {exc}") from exc


async def deidentify_hook(core: Core, spooled: Spooled, caller: Caller) -> Spooled | None:
    settings = core.settings
    site = site_of(settings, caller)
    if settings.deidentify_profile(site) != "basic":
        return None
    assert settings.deidentify_secret is not None  # check() ran at start-up
    tmp = core.blobs.spool_dir() / f"deid-{uuid.uuid4().hex}.dcm"
    try:
        await core.run_blocking(_rewrite, spooled.path, tmp, site, settings.deidentify_secret)
        replaced: Spooled = await core.run_blocking(core.blobs.spool_file, tmp,
                                                    settings.max_instance_bytes)
    finally:
        tmp.unlink(missing_ok=True)
    return replaced
