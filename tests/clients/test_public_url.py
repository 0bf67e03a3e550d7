"""Issue 11.4: RetrieveURL/BulkDataURI use --public-url, trusted proxies' headers, or the socket."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from archive import config
from archive.errors import ConfigError
from tests import factories as f
from tests.conftest import RunningArchive, auth_headers


def _stow(server: RunningArchive, **headers: str) -> str:
    """STOW one instance with extra headers; the RetrieveURL the archive answered with."""
    boundary = "pubURL"
    data = f.to_bytes(f.image("pub"))
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data
            + f"\r\n--{boundary}--\r\n".encode())
    r = requests.post(f"{server.url}/studies", data=body, timeout=60, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json", **auth_headers(), **headers})
    assert r.status_code == 200, r.text
    return str(r.json()["00081199"]["Value"][0]["00081190"]["Value"][0])


SPOOF = {"Forwarded": 'for=1.2.3.4;proto=https;host="evil.example"',
         "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
         "X-Forwarded-Port": "8443"}


def test_dicomweb_client_retrieve_bulkdata_follows_the_uri(server: RunningArchive) -> None:
    ds = f.image("bulk", rows=64, columns=64)
    client = DICOMwebClient(server.url, headers=auth_headers())
    client.store_instances([ds])
    meta = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                             ds.SOPInstanceUID)
    uri = meta["7FE00010"]["BulkDataURI"]
    assert uri.startswith(server.url + "/studies/")
    assert b"".join(client.retrieve_bulkdata(uri)) == ds.PixelData


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(server: RunningArchive) -> None:
    url = _stow(server, **SPOOF)
    assert url.startswith(server.url + "/studies/"), url


def test_forwarded_headers_from_a_trusted_proxy_are_honoured(server_factory: object) -> None:
    server = server_factory(trusted_proxies=("127.0.0.0/8",))  # type: ignore[operator]
    url = _stow(server, Forwarded='for=1.2.3.4;proto=https;host="pacs.example.org"')
    assert url.startswith("https://pacs.example.org/dicom-web/studies/"), url
    url = _stow(server, **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "lb.example",
                           "X-Forwarded-Port": "8443"})
    assert url.startswith("https://lb.example:8443/dicom-web/studies/"), url


def test_public_url_wins_over_everything(server_factory: object) -> None:
    server = server_factory(public_url="https://pacs.example.org/archive",  # type: ignore[operator]
                            trusted_proxies=("127.0.0.1",))
    url = _stow(server, **SPOOF)
    assert url.startswith("https://pacs.example.org/archive/dicom-web/studies/"), url


def test_settings_from_environment_and_toml(tmp_path: Path) -> None:
    s = config.load(environ={"ARCHIVE_PUBLIC_URL": "https://a.example/x/",
                             "ARCHIVE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7"})
    assert s.public_url == "https://a.example/x"
    assert s.trusted_proxies == ("10.0.0.0/8", "192.168.1.7/32")
    toml = tmp_path / "a.toml"
    toml.write_text('public_url = "http://h:81"\ntrusted_proxies = ["::1"]\n')
    s = config.load(environ={}, toml_path=toml)
    assert (s.public_url, s.trusted_proxies) == ("http://h:81", ("::1/128",))
    with pytest.raises(ConfigError, match="not an address"):
        config.load(environ={"ARCHIVE_TRUSTED_PROXIES": "proxy.local"})
    with pytest.raises(ConfigError, match="public URL"):
        config.load(environ={"ARCHIVE_PUBLIC_URL": "pacs.example.org"})
