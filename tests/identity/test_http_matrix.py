"""The HTTP door's authorization matrix (issue 12.3): every route × every kind of caller.

One archive, one real OpenID provider (npm oidc-provider), API keys made by the archive's own
key store. The route table is walked (dicomweb.routes.all_routes()), path parameters are filled
with real stored UIDs, and each answer's status class is checked against the rules:
401 without credentials where a role is needed, 401 `invalid_token` for bad tokens (never a fall
back to anonymous), 403 for a valid identity without the permission, 404 for what the caller may
not see (another's unpublished cohort), never a 5xx.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pydicom
import requests
from pydicom.uid import generate_uid

from archive.identity.apikeys import create_key
from archive.identity.roles import LEAST_ROLE, Permission, Role
from dicomweb.auth import NEEDS_NAME
from dicomweb.routes import Route, all_routes, viewer_routes
from tests import factories as f
from tests.conftest import RunningArchive, auth_headers
from tests.identity.provider import AUDIENCE, OidcProvider


def test_every_route_declares_a_permission() -> None:
    routes = all_routes() + viewer_routes()
    missing = [f"{r.method} {r.path}" for r in routes if not isinstance(r.permission, Permission)]
    assert not missing, f"routes without a declared permission: {missing}"
    assert {r.path for r in viewer_routes()} and all(
        r.permission is Permission.PUBLIC for r in viewer_routes())


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _invalid_tokens(provider: OidcProvider) -> dict[str, str]:
    good = provider.token("curator")
    claims = jwt.decode(good, options={"verify_signature": False})
    kid = jwt.get_unverified_header(good)["kid"]
    key = jwt.PyJWK(provider.keys[0]).key
    expired = jwt.encode(claims | {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
                         key, algorithm="RS256", headers={"kid": kid})
    return {
        "expired": expired,
        "wrong_aud": provider.token("curator", resource="urn:somebody-else"),
        "alg_none": f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(claims | {'roles': ['admin']})}.",
        "garbage": "garbage-token",
    }


def _store(archive: RunningArchive, ds: pydicom.Dataset, **headers: str) -> requests.Response:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + f.to_bytes(ds) + f"\r\n--{boundary}--\r\n".encode())
    return requests.post(f"{archive.url}/studies", data=body, timeout=30, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        **headers})


def _fresh(site: str) -> pydicom.Dataset:
    ds = f.image("matrix", "se", 1, patient_id=f"P-{site}")
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (
        generate_uid(), generate_uid(), generate_uid())
    return ds


def _keys(archive: RunningArchive) -> dict[str, str]:
    async def make() -> dict[str, str]:
        out = {}
        async with archive.core.engine.begin() as conn:
            for name, role, site in (("reader-key", Role.READER, None),
                                     ("site-b-key", Role.CONTRIBUTOR, "SITE_B"),
                                     ("admin-key", Role.ADMIN, None)):
                out[name] = (await create_key(conn, name, role, site))[1]
        return out
    return archive.run(make())


# who → (role, site) for the valid identities; None role = anonymous (reader by default)
WHO: dict[str, tuple[Role | None, str | None]] = {
    "anonymous": (None, None), "reader": (Role.READER, None),
    "contributor_a": (Role.CONTRIBUTOR, "SITE_A"), "contributor_b": (Role.CONTRIBUTOR, "SITE_B"),
    "curator": (Role.CURATOR, None), "admin": (Role.ADMIN, None),
}


def _expected(route: Route, who: str) -> str:
    """'401' | '403' | '404' | 'ok' (a non-refusal: 2xx, or 400/404/405/409 of the handler)."""
    role, _site = WHO[who]
    least = LEAST_ROLE[route.permission]
    if least is None:
        return "ok"
    if who == "anonymous":
        if route.permission in NEEDS_NAME or least > Role.READER:
            return "401"
    elif role is None or role < least:
        return "403"
    if "{cohort}" in route.path and who not in ("reader", "curator", "admin") \
            and route.method == "GET":
        return "404"  # the reader's unpublished cohort: invisible to everyone else
    if "{number}" in route.path:
        return "404"  # no such release: every caller allowed to ask gets the same 404
    return "ok"


def _request(archive: RunningArchive, route: Route, params: dict[str, str],
             headers: dict[str, str], who: str) -> requests.Response:
    path = route.path
    for k, v in params.items():
        path = path.replace("{" + k + "}", v)
    path = path.replace("{tail:.+}", "app.js")  # a real portal asset
    url = archive.base + path
    if route.method == "POST" and route.path.endswith("/studies") and "cohort" not in route.path:
        ds = _fresh(WHO.get(who, (None, None))[1] or "X")
        if "{study}" in route.path:
            ds.StudyInstanceUID = params["study"]
        return _store(archive, ds, **headers)
    if route.method == "POST" and route.path.endswith("/cohorts"):
        return requests.post(url, json={"name": f"by {who}", "filters": {}}, headers=headers,
                             timeout=30)
    if route.method == "POST" and route.path.endswith("/mappings"):
        return requests.post(url, json=[], headers=headers, timeout=30)
    if route.method == "POST" and route.path.endswith("/cases"):
        return requests.post(url, json={"cases": []}, headers=headers, timeout=30)
    if route.method == "DELETE":  # a throwaway study of its own: allowed callers delete it
        ds = _fresh("SITE_A")
        assert _store(archive, ds, **auth_headers()).status_code == 200
        url = url.replace(params["study"], ds.StudyInstanceUID).replace(
            params["series"], ds.SeriesInstanceUID).replace(params["instance"], ds.SOPInstanceUID)
    return requests.request(route.method, url, headers=headers, timeout=30)


def _class(status: int) -> str:
    if status in (401, 403, 404):
        return str(status)
    return "ok" if status < 500 else "5xx"


def test_authorization_matrix(server_factory: Any, oidc_provider: OidcProvider) -> None:
    archive = server_factory(oidc_issuer=oidc_provider.issuer, oidc_audience=AUDIENCE)
    keys = _keys(archive)
    bearer = {
        "anonymous": None, "reader": keys["reader-key"],
        "contributor_a": oidc_provider.token("site-a"), "contributor_b": keys["site-b-key"],
        "curator": oidc_provider.token("curator"), "admin": keys["admin-key"],
    }
    stored = _fresh("SITE_A")
    assert _store(archive, stored, **auth_headers(
        **{"X-Archive-Site": "SITE_A", "X-Archive-Dataset": "DS1"})).status_code == 200
    cohort = requests.post(f"{archive.base}/commons/cohorts", json={"filters": {}}, timeout=30,
                           headers={"Authorization": f"Bearer {keys['reader-key']}"})
    assert cohort.status_code == 201, cohort.text
    assert requests.post(f"{archive.base}/commons/cases", json=[{"case_id": stored.PatientID}],
                         headers=auth_headers(), timeout=30).status_code == 200
    # The dataset routes (QC, release) get a dataset of their own: a release partitions its cases
    # at random, and the study the other routes read must not land in the sequestered set.
    released = _fresh("SITE_A")
    released.PatientID = "P-RELEASED"
    assert _store(archive, released, **auth_headers(
        **{"X-Archive-Site": "SITE_A", "X-Archive-Dataset": "DS2"})).status_code == 200
    params = {"study": stored.StudyInstanceUID, "series": stored.SeriesInstanceUID,
              "instance": stored.SOPInstanceUID, "sop": stored.SOPInstanceUID, "frames": "1",
              "tag": "7FE00010", "case": stored.PatientID, "cohort": cohort.json()["id"],
              "dataset": "DS2", "number": "999999"}
    routes = [r for r in all_routes() if not r.path.endswith("/publish")] + \
        [r for r in all_routes() if r.path.endswith("/publish")]  # publishing changes 404s: last
    invalid = _invalid_tokens(oidc_provider)
    wrong: list[str] = []
    cells = 0
    for route in routes:
        for who, token in bearer.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            expect = _expected(route, who)
            if route.path.endswith("/publish") and who != "anonymous":
                expect = "ok" if who in ("curator", "admin") else "403"
            got = _request(archive, route, params, headers, who)
            cells += 1
            if _class(got.status_code) != expect:
                wrong.append(f"{route.method} {route.path} as {who}: {got.status_code} "
                             f"(expected {expect}) {got.text[:120]}")
            if got.status_code == 401:
                assert got.headers["WWW-Authenticate"].startswith("Bearer"), route.path
        for name, token in invalid.items():
            got = _request(archive, route, params, {"Authorization": f"Bearer {token}"}, name)
            cells += 1
            if got.status_code != 401 or 'error="invalid_token"' not in got.headers.get(
                    "WWW-Authenticate", ""):
                wrong.append(f"{route.method} {route.path} with {name} token: {got.status_code}")
    assert not wrong, "\n".join(wrong)
    assert cells == len(routes) * 10
    print(f"authorization matrix: {len(routes)} routes x 10 callers = {cells} requests")
    _check_audit(archive, keys["admin-key"], stored.StudyInstanceUID)


def _check_audit(archive: RunningArchive, admin: str, study: str) -> None:
    """Each kind of action left its PS3.15 event, and the admin API filters the trail."""
    def events(**q: str) -> list[dict[str, Any]]:
        r = requests.get(f"{archive.base}/commons/audit", params=q, timeout=30,
                         headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.text
        return list(r.json()["events"])

    actions = {e["action"] for e in events(limit="5000")}
    assert {"DICOM Instances Transferred", "Query", "Begin Transferring DICOM Instances",
            "DICOM Instances Accessed", "Export", "DICOM Study Deleted", "Import",
            "User Authentication", "Security Alert"} <= actions
    mine = events(study=study, actor="site-b-key")
    assert mine and {e["study_uids"][0] for e in mine} == {study}
    assert all(e["role"] == "contributor" and e["site"] == "SITE_B" for e in mine)
    deleted = events(action="study_deleted", actor="admin-key")
    assert deleted and all(e["outcome"] == 0 for e in deleted)
    refused = events(action="Security Alert", actor="reader-key")
    assert refused and all(e["outcome"] == 4 for e in refused)
    stored = events(action="DICOM Instances Transferred", actor="curator")
    assert any(e["event_action"] == "C" and e["detail"].get("instances") == 1 for e in stored)


def test_the_security_page_carries_the_permission_table() -> None:
    """docs/security.md lists every route with the permission the code declares."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    for r in all_routes() + viewer_routes():
        least = r.permission.least_role
        row = (f"| {r.method} | `{r.path}` | `{r.permission.label}` | "
               f"{least.label if least else 'anyone (even `--anonymous-role none`)'} |")
        assert row in page, f"docs/security.md lacks: {row}"
