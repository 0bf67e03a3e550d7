"""tests/dcmtk.py tells DCMTK from pynetdicom's same-named console scripts (issue 11.7)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.dcmtk import dcmtk, find_dcmtk


def _pynetdicom_script(bin_dir: Path, tool: str) -> Path:
    """What `pip install pynetdicom` puts into a venv's bin."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / tool
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      f"from pynetdicom.apps.{tool}.{tool} import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("tool", ["storescu", "findscu"])
def test_pynetdicom_script_is_not_dcmtk(tmp_path: Path, tool: str) -> None:
    _pynetdicom_script(tmp_path / "bin", tool)
    assert find_dcmtk(tool, [str(tmp_path / "bin")]) is None


def test_dcmtk_found_behind_a_shadowing_script(tmp_path: Path) -> None:
    real = dcmtk("storescu")  # skips with the reason when DCMTK is absent
    _pynetdicom_script(tmp_path / "bin", "storescu")
    found = find_dcmtk("storescu", [str(tmp_path / "bin"), str(Path(real).parent)])
    assert found == real
