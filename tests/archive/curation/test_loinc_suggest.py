"""LOINC suggestions: abbreviation rules, modality compatibility, learning from approvals,
MIDRC TSV loading, and offline loading of the embedding model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archive.curation.loinc_suggest import (
    ApprovedMapping,
    Suggester,
    load_mapping_table,
    modality_groups,
    shipped_terms,
    suggest,
)
from archive.curation.loinc_text import features


@pytest.fixture(scope="module")
def suggester() -> Suggester:
    return Suggester(shipped_terms())


@pytest.mark.parametrize(("text", "contrast"), [
    ("CT HEAD W/O CONTRAST", "WO"), ("CT HEAD WO", "WO"), ("CT CHEST NON CON", "WO"),
    ("CT CHEST W/WO", "WWO"), ("CT CHEST WWO CONTRAST", "WWO"), ("CT CHEST W & W/O", "WWO"),
    ("MR BRAIN WITH AND WITHOUT", "WWO"), ("CT CHEST W IV CONTRAST", "W"), ("CT CHEST W/ CONTRAST", "W"),
    ("CT CHEST", None)])
def test_contrast_abbreviations(text: str, contrast: str | None) -> None:
    assert features(text).contrast == contrast


def test_view_and_region_abbreviations() -> None:
    cxr = features("CXR PA/LAT")
    assert cxr.modalities == {"xr"} and cxr.regions == {"chest"} and cxr.projections == {"pa", "lat"}
    assert features("XR CHEST 1V").views == "1" and features("CHEST 2 VW").views == "2"
    assert features("XR CHEST 4+ VW").views == "4plus"
    assert features("PORT CHEST AP").flags >= {"portable"}
    assert features("CT A/P W").regions == {"abdomen", "pelvis"}
    assert features("CT C/A/P").regions == {"chest", "abdomen", "pelvis"}
    pe = features("Thorax^CT_PE (Adult)")
    assert pe.regions == {"chest"} and pe.flags >= {"pe", "angio", "pulmonary"}
    assert features("CTA HEAD/NECK").flags >= {"angio"} and features("CTA HEAD/NECK").modalities == {"ct"}


def test_issue_example_vendor_pe_form(suggester: Suggester) -> None:
    top = suggester.suggest("CT", "THORAX^PE_STUDY (Adult)", 3)
    assert top[0].loinc_code == "79077-4"
    assert top[0].long_common_name.startswith("CTA Pulmonary arteries for pulmonary embolus")
    assert [s.score for s in top] == sorted((s.score for s in top), reverse=True)


@pytest.mark.parametrize(("modality", "description", "code"), [
    ("CR,DX", "PORTABLE CHEST 1 VIEW", "36589-0"), ("DX", "XR CHEST PA AND LATERAL", "42272-5"),
    ("CT", "CT HEAD WO CONTRAST", "30799-1"), ("MR", "MRI BRAIN W/WO", "24587-8"),
    ("CT", "CT ABD PELVIS W CONTRAST", "36813-4")])
def test_common_descriptions(suggester: Suggester, modality: str, description: str, code: str) -> None:
    assert suggester.suggest(modality, description, 1)[0].loinc_code == code


def test_modality_is_a_hard_filter(suggester: Suggester) -> None:
    terms = {t.loinc_code: t for t in shipped_terms()}
    for s in suggester.suggest("CT", "CHEST 2 VIEWS PA LAT", 10):
        assert "ct" in terms[s.loinc_code].modalities
    for s in suggester.suggest(["CR", "DX"], "CT CHEST WO", 10):
        assert "xr" in terms[s.loinc_code].modalities
    assert modality_groups("CR,DX") == modality_groups(["DX", "CR"]) == {"xr"}


def test_learns_from_approved_mappings() -> None:
    odd = "ZZ LUNG NODULE FOLLOWUP PROTOCOL 7"
    before = suggest("CT", odd, 3)
    approved = [ApprovedMapping("CT", odd, "79086-5", "CT Chest for screening WO contrast")]
    after = suggest("CT", odd, 3, approved=approved)
    assert after[0].loinc_code == "79086-5"
    assert after[0].score > (before[0].score if before[0].loinc_code == "79086-5" else 0)
    # a near variant of an approved description profits too
    near = suggest("CT", "ZZ LUNG NODULE FOLLOWUP PROTOCOL 8", 3, approved=approved)
    assert "79086-5" in [s.loinc_code for s in near]


def test_load_midrc_tsv_layout(tmp_path: Path) -> None:
    path = tmp_path / "StudyDescription_mapping_table.tsv"
    path.write_text("Modality\tStudyDescription\tLOINC code\tLong Common Name\n"
                    "CR, DX\tXR CHEST 2 VIEWS PA AND LATERAL\t42272-5\tXR Chest PA and Lateral\n"
                    "CT\tCT CHEST WO\t 29252-4 \tCT Chest WO contrast\n"
                    "CT\tNO CODE YET\t\t\n", encoding="utf-8")
    rows = load_mapping_table(path)
    assert rows == [
        ApprovedMapping("CR, DX", "XR CHEST 2 VIEWS PA AND LATERAL", "42272-5", "XR Chest PA and Lateral"),
        ApprovedMapping("CT", "CT CHEST WO", "29252-4", "CT Chest WO contrast")]
    assert Suggester(shipped_terms(), rows).suggest("CR,DX", "xr chest 2 views pa and lateral", 1)[
        0].loinc_code == "42272-5"


def test_model_loads_and_suggests_with_the_network_cut_off(tmp_path: Path) -> None:
    """In a fresh interpreter, with sockets refused and an empty HF cache, loading still works."""
    script = textwrap.dedent("""
        import socket
        def refuse(*a, **k):
            raise OSError("network disabled in test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from archive.curation.loinc_suggest import suggest
        print(suggest("CT", "CT CHEST W CONTRAST", 1)[0].loinc_code)
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "24628-0"
    assert not (tmp_path / ".cache" / "wordllama").exists()


def test_hostile_and_empty_input_is_answered_quickly(suggester: Suggester) -> None:
    import time
    started = time.perf_counter()
    assert len(suggester.suggest("CT", "W/" * 100_000 + " CHEST", 3)) == 3
    assert len(suggester.suggest(None, "", 2)) == 2
    assert suggester.suggest("CT", "CT CHEST", 0) == []
    assert time.perf_counter() - started < 5
