"""The portal's sign-in and curator views in headless Chromium, against the real OpenID provider
(tests/identity: npm oidc-provider, authorization code flow with PKCE through its own login
form) and an archive holding the synthetic commons.

One browser run (tests/e2e/portal_curator.mjs): a reader signs in and finds no curator control
and no sequestered case; a curator signs in, approves a suggested LOINC code by keyboard (the
LOINC facet counts change), rejects another, reads a dataset's QC report and releases it, and is
told the audit trail is for admins; an admin filters the audit trail. axe-core checks each view.
The assertions compare what the page showed with the API. Screenshots stay in
test-artifacts/portal-curator/.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.archive.commons import synth
from tests.archive.commons.conftest import AUTH, CURATOR, Loaded, post_clinical, store
from tests.conftest import ServerThread, _admin, _with_db, key_headers, make_settings
from tests.e2e.browser import ARTIFACTS, BrowserTools, find_browser_tools
from tests.identity.provider import (
    ACCOUNTS,
    AUDIENCE,
    OidcProvider,
    ensure_installed,
    public_client,
    rsa_jwk,
    stable_port,
)

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).with_name("portal_curator.mjs")
LOINC = "commons.loinc_code"
CLIENT = "archive-portal"


@pytest.fixture(scope="module")
def tools() -> BrowserTools:
    t = find_browser_tools()
    if not (t.node_modules / "node_modules" / "axe-core" / "axe.min.js").exists():
        pytest.fail("axe-core missing from .local/node: run tools/e2e-deps.sh")
    return t


@pytest.fixture(scope="module")
def signed(pg_server_url: str, template_db: str, tools: BrowserTools,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """The archive with the portal's sign-in configured at a real OpenID provider whose public
    client redirects back to this archive's portal."""
    ensure_installed()
    name = f"archive_pc_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    url = _with_db(pg_server_url, name)
    settings = make_settings(tmp_path_factory.mktemp("portal-curator"), url,
                             curator_token=CURATOR)
    base = f"http://127.0.0.1:{settings.http_port}"
    provider = OidcProvider(stable_port(), [rsa_jwk()], public_clients=[
        public_client(CLIENT, f"{base}/portal/?view=signin", f"{base}/portal/")]).start()
    settings = replace(settings, oidc_issuer=provider.issuer, oidc_audience=AUDIENCE,
                       portal_oidc_client_id=CLIENT, portal_oidc_scope="openid archive")
    thread = ServerThread(settings, url)
    try:
        server = thread.start()
        commons = synth.build()
        assert post_clinical(server, commons).status_code == 200
        store(server, commons)
        yield Loaded(server, commons)
    finally:
        thread.stop()
        provider.stop()
        asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def report(signed: Loaded, tools: BrowserTools) -> dict[str, Any]:
    out = ARTIFACTS.parent / "portal-curator"
    out.mkdir(parents=True, exist_ok=True)
    plan = {"base": signed.server.base, "out": str(out), "nodeModules": str(tools.node_modules),
            "chromium": tools.chromium, "reader": "rita", "curator": "carl", "admin": "ada"}
    (out / "plan.json").write_text(json.dumps(plan, indent=1))
    with (out / "node.log").open("w") as log:
        subprocess.run([tools.node, str(SCRIPT), str(out / "plan.json")], stdout=log,
                       stderr=subprocess.STDOUT, timeout=900, check=False)
    result: dict[str, Any] = json.loads((out / "report.json").read_text())
    assert result.get("ok"), result.get("error") or (out / "node.log").read_text()
    return result


def explore(server: Loaded, facet: str) -> dict[str | None, int]:
    """One facet of /commons/explore as the curator sees it (studies per value)."""
    r = requests.get(f"{server.server.base}/commons/explore", params={"facet": facet},
                     headers=AUTH, timeout=60)
    r.raise_for_status()
    found = next(f for f in r.json()["facets"] if f["name"] == facet)
    return {v["value"]: v["studies"] for v in found["values"]}


def test_config_names_the_provider_and_the_caller(signed: Loaded) -> None:
    base = signed.server.base
    cfg = requests.get(f"{base}/portal/config.json", timeout=30).json()
    assert cfg["oidc"]["client_id"] == CLIENT and cfg["oidc"]["scope"] == "openid archive"
    assert cfg["oidc"]["redirect_uri"] == f"{base}/portal/?view=signin"
    assert "client_secret" not in json.dumps(cfg)
    assert cfg["you"] == {"signed_in": False, "kind": "anonymous", "subject": "anonymous",
                          "role": "reader", "roles": ["reader"], "site": None,
                          "can": {"curate": False, "release": False, "audit": False}}
    admin = requests.get(f"{base}/portal/config.json", headers=key_headers(signed.server, "admin"),
                         timeout=30).json()["you"]
    assert admin["signed_in"] and admin["role"] == "admin" and all(admin["can"].values())


def test_sign_in_shows_role_and_site_and_signs_out(report: dict[str, Any]) -> None:
    steps = report["steps"]
    assert steps["reader"]["role"] == "reader" and steps["reader"]["subject"] == "rita"
    curator = steps["curator"]
    assert (curator["role"], curator["site"]) == ("curator", ACCOUNTS["carl"]["site"])
    assert curator["navCurate"] and not steps["reader"]["navCurate"]
    for who in ("reader", "curator"):
        after = steps[f"{who}SignedOut"]
        assert after["whoami"].startswith("Not signed in") and not after["token"], after
    # the browser held a JWT access token for the archive's audience, sent as Bearer
    claims = steps["curator"]["tokenClaims"]
    assert claims["aud"] == AUDIENCE and claims["roles"] == ["curator"] and claims["sub"] == "carl"


def test_reader_sees_no_curator_control_and_no_sequestered_case(
        signed: Loaded, report: dict[str, Any]) -> None:
    reader = report["steps"]["reader"]
    assert reader["curateControls"] == 0 and reader["curateDeniedControls"] == 0
    assert "curator role" in reader["curateDenied"]
    hidden = [s for s in signed.commons.studies if s.sequestered]
    assert hidden
    seen = reader["harvest"]
    for s in hidden:
        assert s.uid not in seen
    for case_id in {s.case_id for s in hidden}:
        assert case_id not in seen, case_id
    visible = {s.case_id for s in signed.commons.studies if not s.sequestered}
    assert all(c in seen for c in visible)  # the harvest did page through everything


def test_approving_a_suggestion_changes_the_loinc_facet(signed: Loaded,
                                                        report: dict[str, Any]) -> None:
    c = report["steps"]["curator"]
    approved = c["approved"]
    code, n = approved["code"], approved["studies"]
    before, after = c["facetBefore"], c["facetAfter"]
    assert n > 0 and "Approved" in approved["status"]
    assert after.get(code, 0) - before.get(code, 0) == n
    assert before["not reported"] - after["not reported"] == n
    api = explore(signed, LOINC)
    assert {("not reported" if k is None else k): v for k, v in api.items()} == after
    maps = requests.get(f"{signed.server.base}/commons/mappings?status=approved",
                        timeout=30).json()["mappings"]
    mine = [m for m in maps if m["description_norm"] == approved["description"]]
    assert [(m["loinc_code"], m["curator"]) for m in mine] == [(code, "carl")]
    rejected = c["rejected"]
    row = next(r for r in requests.get(
        f"{signed.server.base}/commons/descriptions?status=unmapped", timeout=60
    ).json()["descriptions"] if r["description"] == rejected["description"])
    assert row["mapping_status"] == "rejected" and row["proposed_code"] == rejected["code"]


def test_qc_report_and_release(signed: Loaded, report: dict[str, Any]) -> None:
    c = report["steps"]["curator"]
    assert "Studies" in c["qc"] and "Possible PHI" in c["qc"]
    number = c["release"]["number"]
    assert number, c["release"]
    made = requests.get(f"{signed.server.base}/commons/releases/{number}", timeout=30).json()
    assert c["release"]["dataset"] in made["datasets"]
    assert "audit trail" in c["auditDenied"] and "admin" in c["auditDenied"]


def test_admin_filters_the_audit_trail(report: dict[str, Any]) -> None:
    a = report["steps"]["admin"]
    assert a["rows"] > 0 and a["filteredRows"] > 0
    assert set(a["filteredActors"]) == {a["actor"]}


def test_curator_views_accessible_and_offline(report: dict[str, Any]) -> None:
    serious = {view: [v for v in found if v["impact"] in ("serious", "critical")]
               for view, found in report["axe"].items()}
    assert set(serious) == {"reader", "reader-curate", "curate", "qc", "audit"}
    assert all(not v for v in serious.values()), serious
    assert report["nonLoopback"] == []
    assert report["pageErrors"] == [] and report["failedRequests"] == [], report
    assert report["consoleErrors"] == [], report["consoleErrors"]
