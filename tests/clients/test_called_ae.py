"""Issue 11.9: `--check-called-ae` rejects associations addressed to another AE title."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from archive import config
from tests.conftest import RunningArchive
from tests.dcmtk import dcmtk


def _echo(server: RunningArchive, called: str) -> tuple[bool, int | None]:
    """(established, rejection reason) of a C-ECHO association with pynetdicom."""
    ae = AE(ae_title="ECHOSCU")
    ae.add_requested_context(Verification)
    host, port, _ = server.dimse
    assoc = ae.associate(host, port, ae_title=called)
    if assoc.is_established:
        status = assoc.send_c_echo()
        assoc.release()
        assert status.Status == 0x0000
        return True, None
    rj = assoc.acceptor.primitive
    return False, None if rj is None or rj.diagnostic is None else int(rj.diagnostic)


def _echoscu(server: RunningArchive, called: str) -> subprocess.CompletedProcess[str]:
    host, port, _ = server.dimse
    return subprocess.run([dcmtk("echoscu"), "-aet", "DCMTK", "-aec", called, host, str(port)],
                          capture_output=True, text=True, timeout=60)


def test_any_called_ae_is_answered_by_default(server: RunningArchive) -> None:
    assert _echo(server, "SOMEONE_ELSE") == (True, None)
    assert _echoscu(server, "SOMEONE_ELSE").returncode == 0


def test_check_called_ae_rejects_other_titles(server_factory: Callable[..., RunningArchive]) -> None:
    server = server_factory(check_called_ae=True)
    assert _echo(server, server.settings.ae_title) == (True, None)
    assert _echo(server, "SOMEONE_ELSE") == (False, 7)  # called AE title not recognised
    assert _echoscu(server, server.settings.ae_title).returncode == 0
    proc = _echoscu(server, "SOMEONE_ELSE")
    assert proc.returncode != 0
    assert "Called AE Title Not Recognized" in proc.stdout + proc.stderr


def test_check_called_ae_from_environment_and_toml(tmp_path: Path) -> None:
    assert config.load(environ={}).check_called_ae is False
    assert config.load(environ={"ARCHIVE_CHECK_CALLED_AE": "on"}).check_called_ae is True
    toml = tmp_path / "a.toml"
    toml.write_text("check_called_ae = true\n")
    assert config.load(environ={}, toml_path=toml).check_called_ae is True
