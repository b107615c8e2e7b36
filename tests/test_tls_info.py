"""What a TLS connection is, for applications: ``request.tls`` and the ASGI TLS
extension (``scope["extensions"]["tls"]``), over real TLS connections with and
without client certificates; and the RFC 4514 names, against ``cryptography``'s."""

from __future__ import annotations

import asyncio
import datetime
import gc
import json
import random
import ssl
import string
import weakref
from pathlib import Path
from typing import Any

import pytest
import trustme
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from wsserver import Request, Router, TLSInfo, WebSocket
from wsserver.protocol.tls_info import rfc4514, validity
from wsserver.response import Response, json_response
from wsserver.server.tls import oid_of

from .conftest import StartServer
from .helpers import client_context, tls_server_files

# ===================================================================== RFC 4514

_KEY = ec.generate_private_key(ec.SECP256R1())

# The attribute types a certificate's subject commonly has (cryptography writes
# the first nine by their short names, the others as OIDs, as RFC 4514 asks).
ATTRIBUTES = [
    NameOID.COMMON_NAME,
    NameOID.LOCALITY_NAME,
    NameOID.STATE_OR_PROVINCE_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.STREET_ADDRESS,
    NameOID.DOMAIN_COMPONENT,
    NameOID.USER_ID,
    NameOID.EMAIL_ADDRESS,
    NameOID.SERIAL_NUMBER,
    NameOID.SURNAME,
    NameOID.GIVEN_NAME,
    NameOID.TITLE,
    NameOID.POSTAL_CODE,
    NameOID.PSEUDONYM,
    NameOID.ORGANIZATION_IDENTIFIER,
    # (Python's ssl names these by long names of OpenSSL's that RFC 4514 does not have.)
    NameOID.UNSTRUCTURED_NAME,
    NameOID.POSTAL_ADDRESS,
    NameOID.INITIALS,
    NameOID.GENERATION_QUALIFIER,
    NameOID.BUSINESS_CATEGORY,
    NameOID.JURISDICTION_LOCALITY_NAME,
    NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME,
]


def certificate(subject: x509.Name) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(_KEY, hashes.SHA256())
    )


def decoded_subject(cert: x509.Certificate, tmp_path: Path) -> Any:
    """The subject as Python's ssl decodes it (what getpeercert() gives)."""
    path = tmp_path / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ssl._ssl._test_decode_cert(str(path))["subject"]  # type: ignore[attr-defined]


PRINTABLE = set(string.ascii_letters + string.digits + " '()+,-./:=?")

# Printable values (the email and country types want IA5 / two letters).
VALUES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list('#"+,;<>\\ =')),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(ATTRIBUTES), VALUES), min_size=1, max_size=5),
    st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=2, max_size=2),
)
def test_a_subject_is_written_as_cryptography_writes_it(
    tmp_path_factory: pytest.TempPathFactory, attributes: list[tuple[Any, str]], country: str
) -> None:
    names = [x509.NameAttribute(NameOID.COUNTRY_NAME, country)]
    for oid, value in attributes:
        if oid == NameOID.EMAIL_ADDRESS or oid == NameOID.DOMAIN_COMPONENT:
            value = value.encode("ascii", "replace").decode()  # (IA5String)
        elif oid == NameOID.SERIAL_NUMBER:  # (PrintableString)
            value = "".join(ch for ch in value if ch in PRINTABLE) or "1"
        names.append(x509.NameAttribute(oid, value))
    subject = x509.Name(names)
    cert = certificate(subject)
    ours = rfc4514(decoded_subject(cert, tmp_path_factory.mktemp("rfc4514")), oid_of)
    assert ours == subject.rfc4514_string()


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("a,b", "a\\,b"),
        ("#1", "\\#1"),
        (" lead", "\\ lead"),
        ("trail ", "trail\\ "),
        (" ", "\\ "),
        ('q"+;<>\\', 'q\\"\\+\\;\\<\\>\\\\'),
        ("a\0b", "a\\00b"),
        ("Grüße", "Grüße"),
    ],
)
def test_values_are_escaped_as_rfc_4514_says(value: str, written: str) -> None:
    assert rfc4514(((("commonName", value),),)) == f"CN={written}"


def test_relative_names_are_written_last_first_and_multi_valued_ones_joined() -> None:
    subject = (
        (("countryName", "DE"),),
        (("organizationName", "Example"),),
        (("commonName", "alice"), ("userId", "a1")),
    )
    assert rfc4514(subject) == "CN=alice+UID=a1,O=Example,C=DE"
    assert rfc4514(((("1.2.3.4.5", "x"),),)) == "1.2.3.4.5=x"  # (ssl's name for an unknown type)


# The times a certificate may say: UTCTime through 2049, GeneralizedTime after
# (RFC 5280 4.1.2.5; cryptography writes each as it says), to the second.
TIMES = st.datetimes(
    min_value=datetime.datetime(1950, 1, 1), max_value=datetime.datetime(9999, 12, 31)
).map(lambda when: when.replace(microsecond=0, tzinfo=datetime.UTC))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(TIMES, min_size=2, max_size=2).map(sorted),
    st.sampled_from([1, 2**70]),
    st.sampled_from([None, "version 1"]),
)
def test_a_certificates_validity_is_read_as_cryptography_reads_it(
    times: list[datetime.datetime], serial: int, version: str | None
) -> None:
    not_before, not_after = times
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(_KEY.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    der = builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    if version is not None:  # (v1: no [0] version field; cryptography writes v3 only)
        der = _without_version(der)
    assert validity(der) == (not_before, not_after)


def _without_version(der: bytes) -> bytes:
    """The v3 certificate ``der`` as a v1 one: its TBSCertificate without
    [0] version (its signature no longer fits, which validity() ignores)."""

    def header(length: int) -> bytes:
        size = (length.bit_length() + 7) // 8
        return bytes([0x80 | size]) + length.to_bytes(size, "big")

    def content(at: int) -> tuple[int, int]:
        length, start = der[at + 1], at + 2
        if length & 0x80:
            size = length & 0x7F
            length, start = int.from_bytes(der[start : start + size], "big"), start + size
        return start, start + length

    certificate, end = content(0)
    tbs_start, tbs_end = content(certificate)
    after_version = content(tbs_start)[1]
    tbs = der[after_version:tbs_end]
    tbs = b"\x30" + header(len(tbs)) + tbs
    rest = tbs + der[tbs_end:end]
    return b"\x30" + header(len(rest)) + rest


def test_a_validity_that_cannot_be_read_is_none() -> None:
    der = certificate(x509.Name([])).public_bytes(serialization.Encoding.DER)
    assert validity(der) is not None
    for cut in range(len(der)):  # (every truncation: the certificate is cut short)
        assert validity(der[:cut]) is None
    for garbage in (b"", b"\x30", b"\x30\x85\x01\x02\x03\x04\x05", b"\x02\x01\x00", b"PEM"):
        assert validity(garbage) is None
    # A time that is not RFC 5280's (no seconds, no Z): not guessed at.
    times = der.index(b"\x17\x0d")
    assert validity(der[:times] + b"\x17\x0d" + b"2401010000+01" + der[times + 15 :]) is None


def test_tls_info_as_the_asgi_extension_gives_it() -> None:
    info = TLSInfo("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 0xC02F)
    assert info.version_number == 0x0303
    assert info.asgi() == {
        "server_cert": None,
        "client_cert_chain": [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": 0x0303,
        "cipher_suite": 0xC02F,
    }


# ============================================================ over real connections


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A TLS server's files; ``ssl_ca_certs`` the CA's, for client certificates."""
    directory = tmp_path_factory.mktemp("tls-info")
    files = {**tls_server_files(ca, directory), "ssl_ca_certs": str(directory / "ca.pem")}
    ca.cert_pem.write_to_path(files["ssl_ca_certs"])
    return files


@pytest.fixture(scope="module")
def alice(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert(
        "alice@example.org", common_name="alice, the first", organization_name="Example"
    )


def described(tls: TLSInfo | None) -> dict[str, Any] | None:
    if tls is None:
        return None
    return {
        "version": tls.version,
        "cipher": tls.cipher,
        "cipher_suite": tls.cipher_suite,
        "subject": [
            [[name, value if isinstance(value, str) else value.hex()] for name, value in rdn]
            for rdn in tls.client_cert["subject"]
        ]
        if tls.client_cert
        else None,
        "chain": list(tls.client_cert_chain),
        "name": tls.client_cert_name,
        "server_cert": tls.server_cert,
    }


def tls_routes() -> Router:
    routes = Router()

    @routes.get("/tls")
    async def show(request: Request) -> Response:
        return json_response(described(request.tls))

    @routes.websocket("/ws")
    async def ws_show(request: Request, ws: WebSocket) -> None:
        await ws.send(json.dumps(described(request.tls)))
        await ws.recv()

    return routes


async def get(port: int, context: ssl.SSLContext | None, path: str = "/tls") -> tuple[Any, str]:
    """GET ``path``: its JSON body, and the cipher suite the client saw."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    cipher = writer.get_extra_info("cipher")
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), answer
    return json.loads(body), cipher[0] if cipher else ""


def cipher_number(name: str) -> int:
    context = ssl.create_default_context()
    return next(s["id"] & 0xFFFF for s in context.get_ciphers() if s["name"] == name)


def subject_name(cert: trustme.LeafCert) -> str:
    parsed = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    return parsed.subject.rfc4514_string()


async def test_a_handler_sees_the_client_certificate_and_the_tls(
    run_server: StartServer,
    ca: trustme.CA,
    server_files: dict[str, str],
    alice: trustme.LeafCert,
) -> None:
    server = await run_server(tls_routes(), **server_files, ssl_cert_reqs=2)
    tls, cipher = await get(server.port, client_context(ca, alice))
    assert tls["version"] == "TLSv1.3" and tls["cipher"] == cipher
    assert tls["cipher_suite"] == cipher_number(cipher)
    assert tls["chain"] == [alice.cert_chain_pems[0].bytes().decode()]
    assert tls["name"] == subject_name(alice)
    assert tls["name"].startswith("CN=alice\\, the first,") and tls["name"].endswith(",O=Example")
    assert ["commonName", "alice, the first"] in [pair for rdn in tls["subject"] for pair in rdn]
    server_pem = Path(server_files["ssl_certfile"]).read_text()
    assert tls["server_cert"] == server_pem
    # A WebSocket's upgrade request has it too.
    async with websockets.connect(
        f"wss://127.0.0.1:{server.port}/ws", ssl=client_context(ca, alice)
    ) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["name"] == subject_name(alice)


async def test_without_client_certificates_or_without_tls(
    run_server: StartServer, ca: trustme.CA, server_files: dict[str, str]
) -> None:
    # Optional client certificates, and a client without one.
    server = await run_server(tls_routes(), **server_files, ssl_cert_reqs=1)
    tls, cipher = await get(server.port, client_context(ca))
    assert tls["cipher"] == cipher and tls["chain"] == [] and tls["name"] is None
    assert tls["subject"] is None
    # Not asked for (the default).
    files = {k: v for k, v in server_files.items() if k != "ssl_ca_certs"}
    server = await run_server(tls_routes(), **files)
    tls, _ = await get(server.port, client_context(ca))
    assert tls["version"] == "TLSv1.3" and tls["name"] is None
    # Plain HTTP: none.
    plain = await run_server(tls_routes())
    assert (await get(plain.port, None))[0] is None


async def test_an_asgi_app_gets_the_tls_extension(
    run_server: StartServer,
    ca: trustme.CA,
    server_files: dict[str, str],
    alice: trustme.LeafCert,
) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        seen.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close"})
            return
        body = json.dumps(scope["extensions"].get("tls")).encode()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": body})

    server = await run_server(app, **server_files, ssl_cert_reqs=2)
    tls, cipher = await get(server.port, client_context(ca, alice))
    assert tls == {
        "server_cert": Path(server_files["ssl_certfile"]).read_text(),
        "client_cert_chain": [alice.cert_chain_pems[0].bytes().decode()],
        "client_cert_name": subject_name(alice),
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": cipher_number(cipher),
    }
    async with websockets.connect(
        f"wss://127.0.0.1:{server.port}/", ssl=client_context(ca, alice)
    ) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert seen[-1]["type"] == "websocket"
    assert seen[-1]["extensions"]["tls"]["client_cert_name"] == subject_name(alice)
    # The specification forbids it without TLS.
    plain = await run_server(app)
    assert (await get(plain.port, None))[0] is None
    assert "tls" not in seen[-1]["extensions"]


async def test_behind_a_proxy_protocol_header_and_with_an_ssl_context(
    run_server: StartServer, ca: trustme.CA, server_files: dict[str, str]
) -> None:
    from .test_proxy_protocol import tls_in_one_packet

    request = b"GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    header = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    server = await run_server(tls_routes(), **server_files, proxy_protocol=True)
    answer = await asyncio.to_thread(
        tls_in_one_packet, server.port, header, request, client_context(ca)
    )
    tls = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert tls["version"] == "TLSv1.3" and tls["server_cert"] is not None
    # An ssl= context: its certificate is the one it serves.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_files["ssl_certfile"], server_files["ssl_keyfile"])
    server = await run_server(tls_routes(), ssl=context)
    tls, cipher = await get(server.port, client_context(ca))
    assert tls["cipher"] == cipher
    assert tls["server_cert"] == Path(server_files["ssl_certfile"]).read_text()


async def test_the_server_certificate_is_the_one_an_sni_callback_chose(
    run_server: StartServer, ca: trustme.CA
) -> None:
    # An ssl= context whose SNI callback switches to another context for a
    # name: request.tls (and the ASGI extension) gave the first context's
    # certificate, not the one the client got.
    first, second = ca.issue_cert("a.example"), ca.issue_cert("b.example")
    contexts = {}
    for name, cert in (("a.example", first), ("b.example", second)):
        contexts[name] = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(contexts[name])

    def switch(ssl_object: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        if name == "b.example":
            ssl_object.context = contexts["b.example"]

    contexts["a.example"].sni_callback = switch
    server = await run_server(tls_routes(), ssl=contexts["a.example"])
    for name, cert in (("b.example", second), ("a.example", first), ("b.example", second)):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(ca), server_hostname=name
        )
        got = ssl.DER_cert_to_PEM_cert(writer.get_extra_info("ssl_object").getpeercert(True))
        writer.write(b"GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert got == cert.cert_chain_pems[0].bytes().decode()
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["server_cert"] == got, name


async def test_contexts_an_sni_callback_made_for_a_connection_are_not_kept(
    run_server: StartServer, ca: trustme.CA
) -> None:
    # The certificate and cipher suites of each context a connection used were
    # kept for the server's life: a callback making a context per connection
    # (loading a tenant's certificate as it comes) grew them without end.
    cert = ca.issue_cert("b.example")
    made: list[weakref.ref[ssl.SSLContext]] = []

    def switch(ssl_object: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        if name != "b.example":
            return
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        made.append(weakref.ref(context))
        ssl_object.context = context

    main = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("a.example").configure_cert(main)
    main.sni_callback = switch
    server = await run_server(tls_routes(), ssl=main)
    for _ in range(5):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(ca), server_hostname="b.example"
        )
        writer.write(b"GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await writer.wait_closed()
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["server_cert"]
    await asyncio.sleep(0.1)  # (the server's side of the last one closed too)
    gc.collect()
    assert len(made) == 5 and [ref() for ref in made] == [None] * 5


async def test_the_server_certificate_is_known_to_a_request_made_while_it_starts(
    ca: trustme.CA, server_files: dict[str, str]
) -> None:
    """It was found after the start's last step, and listening comes before
    that step ends: a request answered meanwhile had none (for its connection's life)."""
    from wsserver import serve

    files = {k: v for k, v in server_files.items() if k != "ssl_ca_certs"}
    server = serve(tls_routes(), "127.0.0.1", 0, **files)
    listening = server._start_serving
    answers: list[Any] = []

    async def listening_then_asked() -> None:
        await listening()
        answers.append((await get(server.port, client_context(ca)))[0])

    server._start_serving = listening_then_asked  # type: ignore[method-assign]
    async with server:
        assert answers[0]["server_cert"] == Path(server_files["ssl_certfile"]).read_text()


def own_ca(directory: Path) -> tuple[x509.Certificate, Any, str]:
    """A CA of the test's own (cryptography's): its certificate, key, and PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "own-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, str(path)


def client_with_subject(
    ca: tuple[x509.Certificate, Any, str], subject: x509.Name, directory: Path
) -> ssl.SSLContext:
    ca_cert, ca_key, _ = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    certfile, keyfile = directory / "client.pem", directory / "client.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(certfile), str(keyfile))
    return context


async def test_a_subject_with_a_value_that_has_no_string_form_is_served(
    run_server: StartServer, server_files: dict[str, str], tmp_path: Path
) -> None:
    """An x500UniqueIdentifier (a BIT STRING: ssl gives bytes) made writing the
    name fail, and the connection with it: every request, whatever its route."""
    from cryptography.x509.name import _ASN1Type

    ca = own_ca(tmp_path)
    subject = x509.Name(
        [
            x509.NameAttribute(
                NameOID.X500_UNIQUE_IDENTIFIER, b"\x01\x02", _type=_ASN1Type.BitString
            ),
            x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, "router1.example"),
            x509.NameAttribute(NameOID.COMMON_NAME, "bob"),
        ]
    )
    context = client_with_subject(ca, subject, tmp_path)
    settings = {**server_files, "ssl_ca_certs": ca[2]}
    server = await run_server(tls_routes(), **settings, ssl_cert_reqs=2)
    tls, _ = await get(server.port, context)
    assert tls["name"].startswith("CN=bob,1.2.840.113549.1.9.2=router1.example,2.5.4.45=#")


def test_the_jitter_is_not_drawn_from_random_which_applications_seed() -> None:
    from wsserver import Router, serve

    draws = []
    for _ in range(2):
        random.seed(7)  # (as an application may, at import, in every worker)
        server = serve(
            Router(), "127.0.0.1", 0, limit_max_requests=1, limit_max_requests_jitter=10**9
        )
        draws.append(server.request_limit)
    assert draws[0] != draws[1]
