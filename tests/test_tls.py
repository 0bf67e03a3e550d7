"""Transport security against real clients: HTTPS (requests, dicomweb-client) and DICOM TLS
(DCMTK echoscu/storescu with +tls, pynetdicom), with a test CA made by `cryptography`."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)

from archive.config import Settings
from archive.tls import exposure_warnings
from tests import factories as f
from tests.conftest import auth_headers, free_port
from tests.dcmtk import dcmtk
from tests.dicomweb.test_stow import multipart


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    return path


def _issue(cn: str, issuer: x509.Name, issuer_key: Any, key: Any, *, ca: bool,
           usage: Any = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("Test CA", _name("Test CA"), ca_key, ca_key, ca=True)
    out = {"ca": d / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                       ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(f"{who}.test", ca.subject, ca_key, key, ca=False, usage=usage)
        (d / f"{who}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, d / f"{who}.key")
    return Pki(out["ca"], d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


def test_https_is_served_and_verifies_against_the_test_ca(server_factory: Any, pki: Pki) -> None:
    server = server_factory(tls_cert=pki.server_cert, tls_key=pki.server_key)
    base = f"https://127.0.0.1:{server.settings.http_port}/dicom-web"
    ds = f.image("tls-http")
    h = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx',
         **auth_headers()}
    assert requests.post(base + "/studies", data=multipart([f.to_bytes(ds)]), headers=h,
                         verify=str(pki.ca), timeout=30).status_code == 200
    session = create_session()
    session.verify = str(pki.ca)
    session.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment overrides `verify`
    client = DICOMwebClient(base, session=session)
    assert [s["0020000D"]["Value"][0] for s in client.search_for_studies()] == [ds.StudyInstanceUID]
    with pytest.raises(requests.exceptions.SSLError):  # a client without the CA refuses it
        requests.get(base + "/studies", timeout=30)
    with pytest.raises(requests.exceptions.ConnectionError):  # no plain HTTP on the TLS port
        requests.get(base.replace("https:", "http:") + "/studies", timeout=30)


def _tls_server(server_factory: Any, pki: Pki, **kw: Any) -> tuple[Any, int]:
    port = free_port()
    server = server_factory(tls_cert=pki.server_cert, tls_key=pki.server_key,
                            dimse_tls_port=port, dimse_tls_ca=pki.ca, **kw)
    return server, port


def test_dicom_tls_with_dcmtk_client_certificates(server_factory: Any, pki: Pki,
                                                  tmp_path: Path) -> None:
    server, port = _tls_server(server_factory, pki)
    called = server.settings.ae_title
    tls = ["+tls", str(pki.client_key), str(pki.client_cert), "+cf", str(pki.ca)]
    echo = subprocess.run([dcmtk("echoscu"), *tls, "-aet", "TLSSCU", "-aec", called,
                           "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60)
    assert echo.returncode == 0, echo.stderr
    ds = f.image("tls-dimse")
    path = f.write(ds, tmp_path / "one.dcm")
    store = subprocess.run([dcmtk("storescu"), *tls, "-aet", "TLSSCU", "-aec", called,
                            "127.0.0.1", str(port), str(path)],
                           capture_output=True, text=True, timeout=60)
    assert store.returncode == 0, store.stderr
    assert server.sql("SELECT sop_uid FROM instance")[0]["sop_uid"] == ds.SOPInstanceUID
    # without a client certificate the TLS listener refuses (--dimse-tls-ca requires one)
    anon = subprocess.run([dcmtk("echoscu"), "+tla", "+cf", str(pki.ca), "-aet", "TLSSCU",
                           "-aec", called, "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=60)
    assert anon.returncode != 0
    # and a plain DIMSE client cannot talk to the TLS port
    plain = subprocess.run([dcmtk("echoscu"), "-to", "10", "-aet", "TLSSCU", "-aec", called,
                            "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60)
    assert plain.returncode != 0


def test_curator_ae_over_tls_with_a_client_certificate(server_factory: Any, pki: Pki) -> None:
    server, port = _tls_server(server_factory, pki, curator_aets=("CURATE",))
    hidden = f.image("tls-hidden", patient_id="P-TLS")
    h = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx',
         **auth_headers()}
    base = f"https://127.0.0.1:{server.settings.http_port}/dicom-web"
    assert requests.post(base + "/studies?collection=sequestered",
                         data=multipart([f.to_bytes(hidden)]), headers=h,
                         verify=str(pki.ca), timeout=30).status_code == 200

    def find(tls_port: int | None) -> list[str]:
        ae = AE(ae_title="CURATE")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        kw: dict[str, Any] = {}
        if tls_port is not None:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca))
            ctx.load_cert_chain(pki.client_cert, pki.client_key)
            kw["tls_args"] = (ctx, "127.0.0.1")
        assoc = ae.associate("127.0.0.1", tls_port or server.settings.dimse_port,
                             ae_title=server.settings.ae_title, **kw)
        assert assoc.is_established
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.PatientID = "P-TLS"
        ds.StudyInstanceUID = ""
        try:
            return [str(i.StudyInstanceUID) for st, i in
                    assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind)
                    if st.Status in (0xFF00, 0xFF01)]
        finally:
            assoc.release()

    assert find(None) == []  # the plain port: an unconfigured AE title is never a curator
    assert find(port) == [hidden.StudyInstanceUID]  # verified client certificate: curator


def test_exposed_bindings_warn_loudly() -> None:
    assert exposure_warnings(Settings(host="127.0.0.1")) == []
    lines = exposure_warnings(Settings(host="0.0.0.0"))
    assert any("HTTP" in line and "NOT encrypted" in line for line in lines)
    tls = exposure_warnings(Settings(host="0.0.0.0", tls_cert=Path("c"), tls_key=Path("k"),
                                     dimse_tls_port=2762))
    assert not any(line.startswith("HTTP") for line in tls)
