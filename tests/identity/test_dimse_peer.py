"""Calling AE title + address → Identity, under the rules of issue 12 §1."""

from __future__ import annotations

from dataclasses import replace

import pytest

from archive.config import Settings, parse_peer
from archive.identity.dimse_peer import identify
from archive.identity.errors import Forbidden
from archive.identity.roles import Kind, Role

PEERS = tuple(parse_peer(p) for p in ("HOSP_A=10.1.0.5:104@SITE_A", "CURATE=127.0.0.1:11113",
                                      "LOCALNAME=localhost:104@SITE_L"))
OPEN = replace(Settings(), peers=PEERS, curator_aets=("CURATE", "SNEAKY"))
RESTRICTED = replace(OPEN, restrict_peers=True)


def test_configured_peer_from_its_host_is_a_contributor_for_its_site() -> None:
    ident = identify(RESTRICTED, "HOSP_A  ", "10.1.0.5")
    assert (ident.subject, ident.role, ident.site, ident.kind, ident.source) == (
        "HOSP_A", Role.CONTRIBUTOR, "SITE_A", Kind.DIMSE, "10.1.0.5")
    assert identify(RESTRICTED, "HOSP_A", "::ffff:10.1.0.5").site == "SITE_A"
    assert identify(RESTRICTED, "LOCALNAME", "127.0.0.1").site == "SITE_L"  # resolved name


def test_restrict_peers_rejects_unknown_and_impostors() -> None:
    with pytest.raises(Forbidden, match="not a configured peer"):
        identify(RESTRICTED, "STRANGER", "10.1.0.5")
    with pytest.raises(Forbidden, match="not from its configured host"):
        identify(RESTRICTED, "HOSP_A", "10.9.9.9")
    with pytest.raises(Forbidden):
        identify(RESTRICTED, "HOSP_A", "not-an-address")


def test_curator_aets_need_the_configured_host_or_tls() -> None:
    assert identify(RESTRICTED, "CURATE", "127.0.0.1").role is Role.CURATOR
    impostor = identify(OPEN, "CURATE", "10.9.9.9")  # right name, wrong host
    assert (impostor.role, impostor.site) == (Role.CONTRIBUTOR, "CURATE")
    assert identify(OPEN, "SNEAKY", "10.9.9.9").role is Role.CONTRIBUTOR  # not a peer
    assert identify(OPEN, "SNEAKY", "10.9.9.9", tls_client_cert=True).role is Role.CURATOR


def test_open_archive_unknown_ae_is_contributor_for_its_own_name() -> None:
    ident = identify(OPEN, "MODALITY1", "192.0.2.1")
    assert (ident.role, ident.site) == (Role.CONTRIBUTOR, "MODALITY1")
    # a known AE from another host gets no more than an unknown one: not the peer's site
    assert identify(OPEN, "HOSP_A", "192.0.2.1").site == "HOSP_A"
