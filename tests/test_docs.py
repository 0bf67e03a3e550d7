"""The manual matches the code: routes ↔ Conformance Statement, settings and flags ↔ configuration page.

The documentation is checked against the real objects — the aiohttp router the server builds and
the argparse parser `archive` runs — in both directions, so a new route, setting or flag fails
here until it is documented, and a documented one that does not exist fails too.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive import config
from archive.cli import overrides_from, parser
from dicomweb.app import create_app

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CONFORMANCE = DOCS / "conformance-statement.md"
CONFIGURATION = DOCS / "configuration.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Service roots: the archive's and each cohort's (after placeholders are normalised to {}).
ROOTS = ("/commons/cohorts/{}/dicom-web", "/dicom-web")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


# --- routes ------------------------------------------------------------------------------------

def normalise(path: str) -> str:
    """`{name}` / `{name:regex}` → `{}`; a service-root prefix → `{root}` (as the statement writes it)."""
    path = re.sub(r"\{[^{}]*\}", "{}", path)
    for root in ROOTS:
        if path == root or path.startswith(root + "/"):
            return "{root}" + path[len(root):]
    return path


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, normalised path) of every route the HTTP app registers, with every optional part
    switched on (hosted viewer, CORS). HEAD is implied by GET in the statement."""
    viewer = tmp_path / "viewer"
    viewer.mkdir()
    (viewer / "index.html").write_text("<!doctype html><title>viewer</title>")
    settings = config.Settings(viewer_dir=viewer, cors_origin="*")
    app = create_app(types.SimpleNamespace(settings=settings))  # type: ignore[arg-type]
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        assert path, f"route without a path: {route!r}"
        if route.method != "HEAD":
            out.add((route.method, normalise(path)))
    return out


def documented_routes(text: str) -> set[tuple[str, str]]:
    """Rows `| METHOD | `path` … |` of the statement's resource tables."""
    out = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] not in METHODS:
            continue
        m = re.match(r"`([^`]+)`", cells[1])
        assert m, f"resource cell without a `path`: {line}"
        path = m.group(1).replace("{root}", "\0")
        out.add((cells[0], normalise(path).replace("\0", "{root}")))
    return out


def test_every_route_is_in_the_conformance_statement(tmp_path: Path) -> None:
    registered = app_routes(tmp_path)
    documented = documented_routes(CONFORMANCE.read_text())
    assert len(registered) > 40  # the real router, not an empty app
    missing = sorted(registered - documented)
    assert not missing, f"routes missing from {CONFORMANCE.name}: {missing}"
    stale = sorted(documented - registered)
    assert not stale, f"{CONFORMANCE.name} lists routes the app does not have: {stale}"


def test_route_normalisation() -> None:
    assert normalise("/dicom-web/studies/{study}") == "{root}/studies/{}"
    assert normalise("/commons/cohorts/{cohort}/dicom-web/studies/{study}") == "{root}/studies/{}"
    assert normalise("/commons/cohorts/{cohort}/files/{sop}") == "/commons/cohorts/{}/files/{}"
    assert normalise("/viewer/{tail:.*}") == "/viewer/{}"


# --- the command line --------------------------------------------------------------------------

def commands(ap: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every leaf command of `archive` (e.g. ("db", "upgrade")) with its parser."""
    subs = [a for a in ap._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, ap
    for action in subs:
        for name, sub in action.choices.items():
            yield from commands(sub, (*path, name))


def flags_of(ap: argparse.ArgumentParser) -> set[str]:
    return {o for a in ap._actions for o in a.option_strings if o.startswith("--")} - {"--help"}


COMMANDS = dict(commands(parser()))


def settings_table() -> dict[str, list[str]]:
    """`ARCHIVE_*` variable → the row's cells (flag, variable, TOML key, default, meaning)."""
    text = CONFIGURATION.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].startswith("`ARCHIVE_"):
            rows[cells[1].strip("`")] = cells
    return rows


SETTINGS = {f.name for f in dataclasses.fields(config.Settings)} - {"extra"}  # extra: TOML tables


def serve_flags_by_setting() -> dict[str, list[str]]:
    """Setting → the option strings of the `archive serve` flag that sets it (by its dest)."""
    dests = {a.dest: a.option_strings for a in COMMANDS[("serve",)]._actions if a.option_strings}
    return {name: dests[dest] for name in SETTINGS
            if (dest := "peer" if name == "peers" else name) in dests}


def test_every_setting_has_a_flag_a_variable_a_toml_key_and_a_row() -> None:
    """The house rule, all four for every Settings field: an `archive serve` flag, an ARCHIVE_
    variable and a TOML key (config.load reads both through PARSERS), and a row of the
    settings table naming all three."""
    assert set(config.PARSERS) == SETTINGS, "PARSERS and Settings differ: " \
        f"{sorted(set(config.PARSERS) ^ SETTINGS)}"
    rows, flags = settings_table(), serve_flags_by_setting()
    problems = []
    for name in sorted(SETTINGS):
        env = config.env_name(name)
        if name not in flags:
            problems.append(f"{name}: no `archive serve` flag")
        if env not in rows:
            problems.append(f"{env}: no row in the settings table of {CONFIGURATION.name}")
            continue
        flag_cell, _, toml_cell = rows[env][:3]
        if toml_cell != f"`{name}`":
            problems.append(f"{env}: TOML key should read `{name}`, not {toml_cell}")
        if name in flags and not any(flag_cell.startswith(f"`{o}") for o in flags[name]):
            problems.append(f"{env}: flag column should name {flags[name]}, not {flag_cell}")
    assert not problems, "\n".join(problems)
    serve = flags_of(COMMANDS[("serve",)])
    for env, cells in rows.items():
        documented = FLAG.findall(cells[0])
        assert all(f in serve for f in documented), f"{env}: {documented} is not an `archive serve` flag"


def test_every_settings_flag_reaches_the_settings() -> None:
    """A flag that `settings_from` does not pass on would satisfy the table and do nothing:
    every setting's value on the parsed command line must come out in the overrides."""
    args = parser().parse_args(["serve", "--peer", "PACS=127.0.0.1:104"])
    given = object()
    for name in serve_flags_by_setting():
        if name != "peers":
            setattr(args, name, given)
    overrides = overrides_from(args)
    dropped = sorted(n for n in serve_flags_by_setting()
                     if n != "peers" and overrides.get(n) is not given)
    assert not dropped, f"settings_from drops the flags of {dropped}"
    assert overrides["peers"] == (config.Peer("PACS", "127.0.0.1", 104),)


def test_every_flag_of_every_command_is_on_the_configuration_page() -> None:
    text = CONFIGURATION.read_text()
    for path, ap in COMMANDS.items():
        for flag in flags_of(ap):
            assert f"`{flag}" in text, f"archive {' '.join(path)} {flag} missing from {CONFIGURATION.name}"


def test_every_flag_the_configuration_page_names_exists() -> None:
    known = set().union(*(flags_of(ap) for ap in COMMANDS.values())) | {"--help"}
    named = set(FLAG.findall(CONFIGURATION.read_text()))
    assert named, "the configuration page names no flags"
    assert not named - known, f"{CONFIGURATION.name} documents flags that do not exist: {named - known}"


def archive_invocations(text: str) -> Iterator[tuple[tuple[str, ...], str]]:
    """(command path, the rest of the command line) for every `archive …` command in the text."""
    text = re.sub(r"\s*\\\n\s*", " ", text)  # shell line continuations
    top = {p[0] for p in COMMANDS}
    for m in re.finditer(r"(?:^|[\s`(/])archive\s+([a-z]+)(?:\s+([a-z]+))?([^\n`#|;&]*)", text):
        first, second, rest = m.group(1), m.group(2), m.group(3)
        if first not in top:
            continue
        if second and (first, second) in COMMANDS:
            yield (first, second), rest
        elif (first,) in COMMANDS:
            yield (first,), f"{second or ''}{rest}"


def test_every_archive_command_in_the_docs_uses_real_flags() -> None:
    pages = [*sorted(DOCS.glob("*.md")), REPO / "README.md"]
    seen = 0
    for page in pages:
        for path, rest in archive_invocations(page.read_text()):
            seen += 1
            unknown = set(FLAG.findall(rest)) - flags_of(COMMANDS[path])
            assert not unknown, f"{page.name}: `archive {' '.join(path)}` has no {sorted(unknown)}"
    assert seen > 10  # the scan found the manual's commands


def test_invocation_scan_reads_commands() -> None:
    found = list(archive_invocations("run `archive serve --host 0.0.0.0 \\\n  --http-port 1` # --x\n"
                                     ".venv/bin/archive db upgrade --data-dir d\narchive-data/"))
    assert found == [(("serve",), " --host 0.0.0.0 --http-port 1"), (("db", "upgrade"), " --data-dir d")]


# --- the site builds ----------------------------------------------------------------------------

def test_mkdocs_build_is_strict_clean(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is in the test extra: pip install -e '.[test]'")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "conformance-statement" / "index.html").is_file()
