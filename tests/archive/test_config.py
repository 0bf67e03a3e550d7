"""Settings: flags over environment over TOML over defaults.

That every setting and flag is documented is checked against docs/configuration.md in
tests/test_docs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archive import config
from archive.cli import parser, settings_from
from archive.errors import ConfigError


def test_defaults_match_the_documented_ones() -> None:
    s = config.load({}, environ={})
    assert (s.host, s.http_port, s.dimse_port, s.ae_title) == ("127.0.0.1", 8080, 11112, "ARCHIVE")
    assert s.data_dir == Path("./archive-data") and s.database_url is None


def test_flag_beats_environment_beats_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "a.toml"
    toml.write_text('http_port = 9000\nae_title = "FROMTOML"\ndimse_port = 9001\n'
                    'peers = ["PACS=10.0.0.1:104@SITE-A"]\n')
    monkeypatch.setenv("ARCHIVE_HTTP_PORT", "9100")
    monkeypatch.setenv("ARCHIVE_AE_TITLE", "FROMENV")
    args = parser().parse_args(["serve", "--config", str(toml), "--ae-title", "FROMFLAG",
                                "--peer", "MOD=127.0.0.1:4242"])
    s = settings_from(args)
    assert (s.http_port, s.ae_title, s.dimse_port) == (9100, "FROMFLAG", 9001)
    assert s.peers == (config.Peer("MOD", "127.0.0.1", 4242),)


def test_peers_from_environment_list() -> None:
    s = config.load({}, environ={"ARCHIVE_PEERS": "A=h1:104,B=h2:11112@SITE-B"})
    assert s.peer("B") == config.Peer("B", "h2", 11112, "SITE-B")


@pytest.mark.parametrize(("env", "value"), [("ARCHIVE_HTTP_PORT", "99999"),
                                           ("ARCHIVE_PEERS", "nonsense"),
                                           ("ARCHIVE_DUPLICATE_POLICY", "overwrite"),
                                           ("ARCHIVE_RESTRICT_PEERS", "perhaps")])
def test_bad_settings_are_rejected_with_a_reason(env: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load({}, environ={env: value})
    assert err.value.reason


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("htp_port = 1\n")
    with pytest.raises(ConfigError, match="htp_port"):
        config.load({}, environ={}, toml_path=toml)


def test_curator_token_from_a_file_or_the_environment_never_needed_on_argv(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from archive import cli
    from archive import config as cfg
    from archive.errors import ConfigError

    secret = tmp_path / "token"
    secret.write_text("s3cret-from-file\n")
    assert cfg.load(environ={"ARCHIVE_CURATOR_TOKEN_FILE": str(secret)}).curator_token == \
        "s3cret-from-file"
    assert cfg.load(environ={"ARCHIVE_CURATOR_TOKEN": "from-env"}).curator_token == "from-env"
    args = cli.parser().parse_args(["serve", "--curator-token-file", str(secret)])
    assert cli.settings_from(args).curator_token == "s3cret-from-file"
    with pytest.raises(ConfigError):
        cfg.load(environ={"ARCHIVE_CURATOR_TOKEN_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError):  # a key without its certificate
        cfg.load(environ={"ARCHIVE_TLS_KEY": str(secret)})


def test_curator_token_on_the_command_line_warns(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from archive import cli

    args = cli.parser().parse_args(["serve", "--curator-token", "visible-in-ps"])
    assert cli.settings_from(args).curator_token == "visible-in-ps"  # still works (legacy)
    err = capsys.readouterr().err
    assert "deprecated" in err and "--curator-token-file" in err and "visible-in-ps" not in err


def test_the_memory_limit_and_job_flags_reach_the_settings() -> None:
    """The flags added so every setting has one (they had a variable and a TOML key only)."""
    args = parser().parse_args([
        "serve", "--malloc-arena-max", "4", "--malloc-trim-seconds", "0",
        "--memtrace-dir", "/tmp/mt", "--memtrace-every-seconds", "5",
        "--max-instance-bytes", "1000", "--qido-max-limit", "50",
        "--default-collection", "staging", "--curator-aets", "CUR1,CUR2",
        "--job-stalled-seconds", "9", "--s3-read-timeout", "7"])
    s = settings_from(args)
    assert (s.malloc_arena_max, s.malloc_trim_seconds) == (4, 0.0)
    assert (s.memtrace_dir, s.memtrace_every_seconds) == (Path("/tmp/mt"), 5.0)
    assert (s.max_instance_bytes, s.qido_max_limit) == (1000, 50)
    assert (s.default_collection, s.curator_aets) == ("staging", ("CUR1", "CUR2"))
    assert (s.job_stalled_seconds, s.s3_read_timeout) == (9.0, 7.0)


@pytest.mark.parametrize("flag", ["--memtrace-every-seconds", "--job-stalled-seconds",
                                  "--s3-read-timeout"])
def test_a_flag_is_checked_as_its_variable_is(flag: str) -> None:
    """Flags hand config.load strings, so its parser (here: more than 0) applies to them too."""
    with pytest.raises(ConfigError):
        settings_from(parser().parse_args(["serve", flag, "0"]))
