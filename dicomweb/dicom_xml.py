"""DICOM JSON (PS3.18 Annex F) → Native DICOM Model XML (PS3.19 Annex A), with lxml."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lxml import etree
from pydicom.datadict import keyword_for_tag

_PN_PARTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def _keyword(tag: str) -> str | None:
    try:
        return keyword_for_tag(int(tag, 16)) or None
    except ValueError:
        return None


def _person_name(parent: etree._Element, number: int, value: dict[str, str]) -> None:
    pn = etree.SubElement(parent, "PersonName", number=str(number))
    for group in ("Alphabetic", "Ideographic", "Phonetic"):
        text = value.get(group)
        if not text:
            continue
        g = etree.SubElement(pn, group)
        for name, part in zip(_PN_PARTS, text.split("^"), strict=False):
            if part:
                etree.SubElement(g, name).text = part


def _attribute(parent: etree._Element, tag: str, element: dict[str, Any]) -> None:
    vr = element.get("vr", "UN")
    attrs = {"tag": tag, "vr": vr}
    kw = _keyword(tag)
    if kw:
        attrs["keyword"] = kw
    node = etree.SubElement(parent, "DicomAttribute", attrs)
    if "BulkDataURI" in element:
        etree.SubElement(node, "BulkData", uri=element["BulkDataURI"])
        return
    if "InlineBinary" in element:
        etree.SubElement(node, "InlineBinary").text = element["InlineBinary"]
        return
    for i, value in enumerate(element.get("Value", []), start=1):
        if vr == "SQ":
            item = etree.SubElement(node, "Item", number=str(i))
            _fill(item, value or {})
        elif vr == "PN":
            _person_name(node, i, value or {})
        else:
            v = etree.SubElement(node, "Value", number=str(i))
            if value is not None:
                v.text = str(value)


def _fill(parent: etree._Element, dataset: dict[str, Any]) -> None:
    for tag in sorted(dataset):
        _attribute(parent, tag, dataset[tag])


def to_xml(dataset: dict[str, Any]) -> bytes:
    """One data set as a NativeDicomModel document."""
    root = etree.Element("NativeDicomModel", xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM")
    _fill(root, dataset)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def to_xml_parts(datasets: Iterable[dict[str, Any]]) -> Iterable[bytes]:
    for ds in datasets:
        yield to_xml(ds)
