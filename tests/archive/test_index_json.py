"""instance.metadata spliced by the parse worker (archive.index_json) is the trigger's content."""

from __future__ import annotations

import json
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from archive.instance import read_instance
from tests import factories as f
from tests.conftest import RunningArchive
from tests.dicomweb.test_wado import store
from tests.migration_files import load_migration


def _with_sequence(name: str) -> Dataset:
    """A sequence whose item holds tags above (0008,3002) and (0008,3002) itself: a splice at
    the wrong place would show."""
    ds = f.image(name)
    item = Dataset()
    item.SeriesInstanceUID = f.uid(name, "ref")
    item.AvailableTransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.ReferencedSeriesSequence = [item]
    ds.PatientName = "Müller^Zoë"
    return ds


def _own_syntax(name: str) -> Dataset:
    ds = f.image(name)
    ds.AvailableTransferSyntaxUID = "1.2.840.10008.1.2"  # replaced by the stored syntax
    return ds


def _expected(header: dict, syntax: str, pixels: tuple[str, str] | None) -> dict:
    """What the trigger's jsonb concatenation gives: header || syntax || Pixel Data marker."""
    out = header | {"00083002": {"vr": "UI", "Value": [syntax]}}
    if pixels:
        out |= {pixels[0]: {"vr": pixels[1], "BulkDataURI": f"bulk:{pixels[0]}"}}
    return out


def test_metadata_is_the_header_plus_syntax_and_pixel_marker(tmp_path: Path) -> None:
    for n, ds in enumerate([f.image("ij1"), f.image("ij2", transfer_syntax=RLELossless),
                            _with_sequence("ij3")]):
        path = f.write(ds, tmp_path / f"{n}.dcm")
        facts = read_instance(path, path.stat().st_size)
        assert facts.header_json == json.dumps(facts.header, separators=(",", ":"),
                                               ensure_ascii=False)  # unchanged bytes
        assert facts.metadata_json is not None and facts.pixels is not None
        meta = json.loads(facts.metadata_json)
        tag = f"{facts.pixels.tag:08X}"
        assert meta == _expected(facts.header, facts.transfer_syntax, (tag, facts.pixels.vr))
        assert list(meta) == sorted(meta)  # tag order, as the trigger's jsonb text had it
        # the markers as jsonb writes them: retrieve finds them by that text (reads._document)
        assert facts.metadata_json.count('"BulkDataURI": "bulk:') == sum(
            '"BulkDataURI"' in json.dumps(v) for v in meta.values())


def test_a_header_holding_the_syntax_leaves_metadata_to_the_trigger(tmp_path: Path) -> None:
    path = f.write(_own_syntax("ij4"), tmp_path / "a.dcm")
    facts = read_instance(path, path.stat().st_size)
    assert facts.metadata_json is None
    assert json.loads(facts.header_json or "")["00083002"]["Value"] == ["1.2.840.10008.1.2"]


def _trigger_expr() -> str:
    """The trigger's expression (migration 0003) over instance `i`."""
    return str(load_migration("0003_retrieve.py").METADATA_EXPR.format(t="i"))


def test_stored_metadata_equals_the_triggers(server: RunningArchive) -> None:
    datasets = [f.image("ij5"), f.image("ij5", number=2, transfer_syntax=RLELossless),
                _with_sequence("ij6"), _own_syntax("ij7")]
    store(server, datasets)
    rows = server.sql(f"SELECT i.metadata::jsonb = ({_trigger_expr()})::jsonb AS same, "
                      "i.metadata::jsonb->'00083002'->'Value'->>0 = i.transfer_syntax AS ts, "
                      "strpos(i.metadata, '\"vr\": ') = 0 AS spliced FROM instance i")
    assert len(rows) == 4 and all(r["same"] and r["ts"] for r in rows)
    # three texts kept as ingest sent them (compact), one built by the trigger (jsonb's text)
    assert sorted(r["spliced"] for r in rows) == [False, True, True, True]


def test_a_header_update_without_metadata_rebuilds_it(server: RunningArchive) -> None:
    store(server, [f.image("ij8")])
    server.sql("""UPDATE instance SET header = header || '{"00081030": {"vr": "LO",
                  "Value": ["new"]}}'::jsonb""")
    row = server.sql("SELECT metadata::jsonb->'00081030'->'Value'->>0 AS d FROM instance")[0]
    assert row["d"] == "new"
