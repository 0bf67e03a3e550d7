"""Issue 13: Schemathesis against the OpenAPI document of /commons, served by a real running
archive (GET /commons/openapi.json), with the curator credential, bounded for CI.

Why Schemathesis: it turns each operation of the document into a Hypothesis strategy (schema-
conforming *and* schema-violating parameters and bodies), so the fuzzing follows the document
rather than a hand-kept list of routes. Each operation gets EXAMPLES positive and EXAMPLES
negative cases (ARCHIVE_FUZZ_EXAMPLES; `ARCHIVE_FUZZ_LONG=1` for random seeds, as the other
fuzzers) and the whole run stops generating after BUDGET seconds, so it fits CI (< 60 s).

Invariants (checked by Schemathesis's own checks where it has them): never a 5xx
(`not_a_server_error`), every status one the document lists for the operation
(`status_code_conformance`), never a dropped connection, no traceback or ERROR in the log, and
/healthz answers afterwards (the shared `counts` fixture of test_fuzz.py, which also prints and
records tried / 4xx / 5xx).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from tests import factories as f
from tests.conftest import TEST_CURATOR_TOKEN, RunningArchive
from tests.reliability.test_bad_input import body_of, part, stow
from tests.reliability.test_fuzz import counts  # noqa: F401  (the fixture: invariants + report)

LONG = bool(os.environ.get("ARCHIVE_FUZZ_LONG"))
EXAMPLES = int(os.environ.get("ARCHIVE_FUZZ_EXAMPLES", "400" if LONG else "6"))
BUDGET = float(os.environ.get("ARCHIVE_SCHEMATHESIS_SECONDS", "600" if LONG else "40"))
AUTH = {"Authorization": f"Bearer {TEST_CURATOR_TOKEN}"}


def _status_failures(case: Any, response: requests.Response) -> list[str]:
    """Schemathesis's verdict on one response: [] or the failed checks' titles."""
    try:
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
    except (FailureGroup, Failure) as exc:
        found = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
        return [f"{case.method} {case.operation.path} -> {response.status_code}: "
                f"{getattr(e, 'title', type(e).__name__)}" for e in found]
    return []


def test_commons_openapi_with_schemathesis(server: RunningArchive,
                                           counts: Counter[str]) -> None:  # noqa: F811
    doc = requests.get(server.base + "/commons/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    session = requests.Session()
    deadline = time.monotonic() + BUDGET
    problems: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 15, [o.label for o in operations]

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not LONG,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def one(case: Any) -> None:
                if time.monotonic() > deadline:
                    return
                counts["tried"] += 1
                try:
                    response = case.call(base_url=server.base, session=session, headers=AUTH,
                                         timeout=30)
                except requests.ConnectionError:
                    counts["dropped"] += 1
                    problems.append(f"{case.method} {case.operation.path}: connection dropped")
                    return
                counts[f"{response.status_code // 100}xx"] += 1
                if response.status_code >= 500:
                    problems.append(f"reproduce: {case.as_curl_command()}")
                problems.extend(_status_failures(case, response))

            try:
                one()
            except Unsatisfiable:  # nothing in this operation can be made schema-violating
                counts[f"no {mode.value} cases"] += 1
    counts["operations"] = len(operations)
    assert counts["tried"] >= len(operations), counts
    assert not problems, sorted(set(problems))[:20]


def test_lone_surrogate_in_json_bodies_is_400(server: RunningArchive,
                                              counts: Counter[str]) -> None:  # noqa: F811
    """Found by the run above: `"\\ud800"` is valid JSON but has no UTF-8 form, and every JSON
    POST of /commons (and the curation and collection bodies) answered 500 when it reached
    PostgreSQL. Now 400 with a reason, before the database."""
    assert stow(server, body_of(part(f.to_bytes(f.image("surrogate"))))).status_code == 200
    study = f.uid("surrogate")
    headers = {**AUTH, "Content-Type": "application/json"}
    cases = [("POST", "/commons/mappings", '{"modality": "CT", "description": "\\ud800", '
              '"status": "rejected"}'),
             ("POST", "/commons/mappings", '{"modality": "CT", "description": "x", '
              '"loinc_code": "\\udfff", "status": "approved"}'),
             ("POST", "/commons/cohorts", '{"name": "\\ud800"}'),
             ("POST", "/commons/cases", '[{"case_id": "\\ud800"}]'),
             ("POST", "/commons/testsets", '{"name": "\\ud800", "size": 1}'),
             ("POST", "/commons/datasets/d1/release", '{"notes": "\\ud800"}'),
             ("PUT", f"/commons/studies/{study}/collection", '{"collection": "\\ud800"}')]
    for method, path, body in cases:
        counts["tried"] += 1
        r = requests.request(method, server.base + path, data=body.encode(), headers=headers,
                             timeout=30)
        counts[f"{r.status_code // 100}xx"] += 1
        assert r.status_code == 400, (method, path, r.status_code, r.text)
        assert "surrogate" in r.json()["error"], r.text
