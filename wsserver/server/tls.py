"""TLS: the server's SSL context, made from the ``ssl_*`` settings (uvicorn's names),
and what a connection's TLS is (:func:`connection_tls`, ``request.tls``)."""

from __future__ import annotations

import functools
import logging
import re
import ssl
import tempfile
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, cast

from ..config import Config, declared
from ..errors import ConfigError
from ..protocol.proxy_protocol import begins_proxy_header
from ..protocol.tls_info import TLSInfo, rfc4514, validity

__all__ = [
    "cipher_suites",
    "connection_tls",
    "failure_hint",
    "oid_of",
    "refuse_unusable",
    "say_if_not_valid",
    "served_certificate",
    "ssl_context",
    "watch_handshakes",
]

logger = logging.getLogger("wsserver.server")


class _NoPassword(Exception):
    """The key is encrypted, and ssl_keyfile_password is not set."""


class _LongPassword(Exception):
    """ssl_keyfile_password is longer than OpenSSL takes."""


#: The longest password OpenSSL's callback takes (Python's ssl raises ValueError beyond).
_MAX_PASSWORD = 1024
#: The TLS settings that mean nothing without ssl_certfile, said but not refused
#: (ssl_keyfile and ssl_cert_reqs are refused).
_WITHOUT_CERTFILE = ("ssl_keyfile_password", "ssl_ca_certs", "ssl_ciphers")
#: The settings that make the server's context: an ``ssl=`` context replaces them all.
TLS_SETTINGS = (
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_keyfile_password",
    "ssl_ca_certs",
    "ssl_cert_reqs",
    "ssl_ciphers",
)


#: OpenSSL's reasons, from load_cert_chain(), for a key that is not the certificate's.
_NOT_ITS_KEY = ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED")
#: The PEM blocks OpenSSL loads a certificate, and a private key, from.
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN (?:TRUSTED |X509 )?CERTIFICATE-----")
_PEM_KEY = re.compile(rb"-----BEGIN (?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----")
#: A certificate's PEM block, whole.
_PEM_CERTIFICATE_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*?-----END CERTIFICATE-----"
)


def _missing_pem(certfile: str, keyfile: str | None) -> str | None:
    """Which file has no PEM block of what it should hold, said as a setting; None if both do."""
    try:
        with open(certfile, "rb") as file:
            cert = file.read()
        if keyfile is None:
            key = cert
        else:
            with open(keyfile, "rb") as file:
                key = file.read()
    except OSError:
        return None
    if _PEM_CERTIFICATE.search(cert) is None:
        return f"ssl_certfile {certfile}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)"
    if _PEM_KEY.search(key) is None:
        setting = "ssl_certfile" if keyfile is None else "ssl_keyfile"
        return (
            f"{setting} {keyfile or certfile}: no PEM private key in it"
            " (-----BEGIN ... PRIVATE KEY-----)"
        )
    return None


#: The cipher suites of TLS 1.3 (RFC 8446 B.4), by OpenSSL's names, which
#: set_ciphers() does not set (SSL_CTX_set_ciphersuites() would, which Python lacks).
_TLS_1_3_SUITES = frozenset(
    {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_CCM_SHA256",
        "TLS_AES_128_CCM_8_SHA256",
    }
)


def _tls_1_3_suites(ciphers: str | None) -> list[str]:
    """The TLS 1.3 suites the OpenSSL cipher list ``ciphers`` names, in its order."""
    names = re.split(r"[:, ]+", ciphers or "")
    return [
        name for name in dict.fromkeys(n.lstrip("!-+") for n in names) if name in _TLS_1_3_SUITES
    ]


def _key_is_of_a_later_certificate(config: Config) -> int | None:
    """Which certificate of ssl_certfile (counted from 1) after its first the
    key is of (a chain written before the server's certificate: OpenSSL takes
    the first as the one served); None if none is. (Asked after the key was
    found not to be the first's: each is tried alone, from a file of its own.)"""
    assert config.ssl_certfile is not None
    try:
        with open(config.ssl_certfile, "rb") as file:
            pems = _PEM_CERTIFICATE_BLOCK.findall(file.read())
    except OSError:
        return None
    keyfile = config.ssl_keyfile or config.ssl_certfile
    password = config.ssl_keyfile_password or ""  # (decrypted a moment ago, if encrypted)
    try:
        for number, pem in enumerate(pems[1:], 2):
            with tempfile.NamedTemporaryFile(suffix=".pem") as alone:
                alone.write(pem)
                alone.flush()
                try:
                    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
                        alone.name, keyfile, lambda: password
                    )
                except (OSError, ValueError):  # (ssl.SSLError is an OSError)
                    continue
            return number
    except OSError:  # (no temporary file can be written: a read-only filesystem, say)
        return None
    return None


def ssl_context(config: Config, *, quiet: bool = False) -> ssl.SSLContext | None:
    """The server-side SSL context the settings describe, or None when TLS is off.

    ``quiet``: what it would warn of is not said (a supervisor's check of what
    its workers will make, each of which says it).

    Raises:
        ConfigError: a key, or client certificates asked for, without a
            certificate; client certificates asked for without CA certificates
            to check them; or a file that cannot be loaded (missing,
            unreadable, not PEM, an encrypted key without its password, a wrong
            password), said in one line.
    """
    if config.ssl_certfile is None:
        if config.ssl_keyfile is not None:
            raise ConfigError(
                f"ssl_keyfile {config.ssl_keyfile!r} needs ssl_certfile"
                f" ({declared('ssl_certfile').where()})"
            )
        if config.ssl_cert_reqs != ssl.CERT_NONE:
            # Client authentication asked for: plain ws:// would fail open (also
            # for serve(listen=False), which serves the sockets it is handed).
            raise ConfigError(
                f"ssl_cert_reqs {config.ssl_cert_reqs} (client certificates) needs"
                f" ssl_certfile ({declared('ssl_certfile').where()}): without it TLS is off"
            )
        # The others may come from the environment, meant for another server
        # of the process (a TestClient's, say): said, not refused.
        for setting in _WITHOUT_CERTFILE:
            if getattr(config, setting) not in (None, 0) and not quiet:
                logger.warning(
                    "%s is set but ssl_certfile is not: TLS is off (ws://, http://)", setting
                )
        return None
    if config.ssl_cert_reqs != ssl.CERT_NONE and config.ssl_ca_certs is None:
        # (Nothing could verify a client's certificate: every client that
        # presents one is refused.)
        which = "required" if config.ssl_cert_reqs == ssl.CERT_REQUIRED else "optional"
        raise ConfigError(
            f"ssl_cert_reqs {config.ssl_cert_reqs} (client certificates {which}) needs"
            f" ssl_ca_certs ({declared('ssl_ca_certs').where()})"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    what = "ssl_certfile or ssl_keyfile"
    # Where the key is: ssl_keyfile, else ssl_certfile (a file with both).
    key_setting = "ssl_keyfile" if config.ssl_keyfile is not None else "ssl_certfile"
    asked = False

    def password() -> str:
        # Asked for only when the key is encrypted. (Given None, OpenSSL asks
        # on the terminal instead, and waits for an answer.)
        nonlocal asked
        asked = True
        if config.ssl_keyfile_password is None:
            raise _NoPassword
        if len(config.ssl_keyfile_password.encode()) > _MAX_PASSWORD:
            raise _LongPassword
        return config.ssl_keyfile_password

    tls_1_3 = _tls_1_3_suites(config.ssl_ciphers)  # (which set_ciphers() does not set)
    try:
        for setting in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs"):
            path = getattr(config, setting)
            if path is not None:
                what = f"{setting} {path}"
                with open(path, "rb"):  # (an OSError naming the file, not ssl's bare errno)
                    pass
        what = "ssl_certfile or ssl_keyfile"
        try:
            context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, password)
        except _NoPassword:
            raise ConfigError(
                f"TLS: {key_setting} is encrypted: set ssl_keyfile_password"
            ) from None
        except _LongPassword:
            raise ConfigError(
                f"TLS: ssl_keyfile_password is longer than {_MAX_PASSWORD} bytes"
            ) from None
        except ssl.SSLError as exc:
            # Decrypted, the key may still not be the certificate's: another
            # key of its type (KEY_VALUES_MISMATCH), or one of another type
            # (RSA for an EC certificate), which OpenSSL keeps apart from the
            # certificate and then finds none for (NO_CERTIFICATE_ASSIGNED).
            if exc.reason in _NOT_ITS_KEY:
                number = _key_is_of_a_later_certificate(config)
                if number is not None:  # (a chain written before its certificate)
                    whose = (
                        f"ssl_keyfile is the private key of certificate {number} in ssl_certfile"
                        if config.ssl_keyfile is not None
                        else f"the private key in ssl_certfile is that of its certificate {number}"
                    )
                    raise ConfigError(
                        f"TLS: {whose}, not of its first, which is the one served: the"
                        " server's certificate goes first, then its chain"
                    ) from None
                raise ConfigError(
                    "TLS: ssl_keyfile is not the private key of ssl_certfile's certificate"
                    if config.ssl_keyfile is not None
                    else "TLS: the private key in ssl_certfile is not its certificate's"
                ) from None
            if asked:
                raise ConfigError(
                    f"TLS: ssl_keyfile_password does not decrypt {key_setting}"
                ) from None
            missing = _missing_pem(config.ssl_certfile, config.ssl_keyfile)
            if missing is not None:  # (OpenSSL says "PEM lib", which file not)
                raise ConfigError(f"TLS: {missing}") from None
            raise
        if config.ssl_ca_certs is not None:
            what = f"ssl_ca_certs {config.ssl_ca_certs}"
            context.load_verify_locations(config.ssl_ca_certs)
        if config.ssl_ciphers is not None:
            what = "ssl_ciphers"
            context.set_ciphers(config.ssl_ciphers)
    except (OSError, ssl.SSLError) as exc:
        # (An SSLError of set_ciphers() has no strerror: its message is its one argument.)
        reason = exc.strerror or (exc.args[0] if len(exc.args) == 1 else exc)
        if what == "ssl_ciphers" and tls_1_3:
            kind = "is a TLS 1.3 suite" if len(tls_1_3) == 1 else "are TLS 1.3 suites"
            reason = (
                f"{reason} ({', '.join(tls_1_3)} {kind}: ssl_ciphers is OpenSSL's list for"
                " TLS 1.2, and sets none of TLS 1.3's)"
            )
        raise ConfigError(f"TLS: {what}: {reason}") from None
    if tls_1_3 and not quiet:
        logger.warning(
            "TLS: ssl_ciphers names TLS 1.3 suites (%s), which it does not set (it is"
            " OpenSSL's list for TLS 1.2): TLS 1.3 clients may use any of OpenSSL's own",
            ", ".join(tls_1_3),
        )
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    if config.ssl_ca_certs is not None and config.ssl_cert_reqs == ssl.CERT_NONE and not quiet:
        # (uvicorn's default: meant for client certificates, the server is open
        # to every client; meant as the server's chain, it is not sent.)
        logger.warning(
            "ssl_ca_certs is set but ssl_cert_reqs is 0: no client certificate is asked for"
            " (--ssl-cert-reqs 2 requires one, 1 checks one if sent); a server certificate's"
            " chain belongs in ssl_certfile, after it"
        )
    # The ALPN of HTTP/1.1 (all we speak), for clients that ask.
    context.set_alpn_protocols(["http/1.1"])
    if config.ssl_ciphers is not None and not quiet:
        _say_if_tls_1_2_refused(context)
    return context


# ------------------------------------------------------------ a connection's TLS


def connection_tls(
    ssl_object: ssl.SSLObject, server_cert: str | None, cipher_suites: dict[str, int]
) -> TLSInfo:
    """What the TLS connection of ``ssl_object`` is (``cipher_suites``: the
    numbers of the context's suites, by name: see :func:`cipher_suites`)."""
    cipher = ssl_object.cipher()
    name = cipher[0] if cipher else None
    client_cert = ssl_object.getpeercert() or None  # ({} for one not verified: none asked)
    der = ssl_object.getpeercert(binary_form=True)
    chain: tuple[str, ...] = ()
    if der:
        sent = getattr(ssl_object, "get_unverified_chain", None)  # (Python 3.13 on: DER)
        certs = [cert for cert in sent() or () if isinstance(cert, bytes)] if sent else []
        chain = tuple(ssl.DER_cert_to_PEM_cert(cert) for cert in certs or [der])
    return TLSInfo(
        version=ssl_object.version(),
        cipher=name,
        cipher_suite=cipher_suites.get(name) if name else None,
        client_cert=client_cert,
        client_cert_chain=chain,
        client_cert_name=rfc4514(cast(Any, client_cert["subject"]), oid_of)
        if client_cert
        else None,
        server_cert=server_cert,
    )


@functools.lru_cache(maxsize=256)
def oid_of(name: str) -> str | None:
    """The OID of the object OpenSSL names ``name`` (a certificate's attribute type)."""
    try:
        return str(ssl._ASN1Object.fromname(name).oid)  # (what ssl.Purpose is made with)
    except ValueError:
        return None


def cipher_suites(context: ssl.SSLContext) -> dict[str, int]:
    """The number (IANA's) of each cipher suite ``context`` may use, by OpenSSL's name."""
    return {suite["name"]: suite["id"] & 0xFFFF for suite in context.get_ciphers()}


def served_certificate(context: ssl.SSLContext) -> str | None:
    """The certificate (PEM) a client gets from ``context``: a TLS handshake in
    memory tells (so an ``ssl=`` context's too); None if it cannot (a context
    that wants client certificates and TLS 1.2 at most, say)."""
    client = _handshake_in_memory(context)
    der = client.getpeercert(binary_form=True) if isinstance(client, ssl.SSLObject) else None
    return ssl.DER_cert_to_PEM_cert(der) if der else None


def refuse_tls_settings(config: Config, given: Collection[str]) -> None:
    """Refuse the TLS settings ``given`` (as arguments) beside an ``ssl=``
    context, which they would not change; say those ``config`` has otherwise
    (the environment's may be meant for another server of the process).

    Raises:
        ConfigError: a TLS setting is among ``given``.
    """
    beside = [name for name in TLS_SETTINGS if name in given]
    if beside:
        # (ssl_cert_reqs=2 beside it: no client certificate was asked for.)
        raise ConfigError(
            f"ssl= and {', '.join(name + '=' for name in sorted(beside))}: the context is the"
            " server's TLS, and those settings would be ignored (set them on the context,"
            " or give no context)"
        )
    for name in TLS_SETTINGS:
        if getattr(config, name) != Config.__dataclass_fields__[name].default:
            logger.warning("%s is set but ignored: the ssl= context is the server's TLS", name)


def refuse_unusable(context: ssl.SSLContext) -> None:
    """Refuse an ``ssl=`` context no client could be served over: a client's,
    one without a certificate (and no SNI callback to pick one), or one that
    chooses HTTP/2 by ALPN (this server speaks HTTP/1.1 only).

    Raises:
        ConfigError: it is a client's context, it has no certificate, or it
            chooses another protocol than HTTP/1.1 for a client that offers
            h2 and http/1.1.
    """
    if context.protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ConfigError(
            "ssl: the context is a client's (PROTOCOL_TLS_CLIENT); a server's is made with"
            " ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) or"
            " ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"
        )
    client = _handshake_in_memory(context, alpn=["h2", "http/1.1"])
    if (
        isinstance(client, ssl.SSLError)
        and client.reason == "NO_SHARED_CIPHER"
        and context.sni_callback is None
    ):
        # (TLS 1.3's suites are always there, unless the context has TLS 1.2 at most.)
        raise ConfigError(
            "ssl: the context has no certificate (load_cert_chain()), or no cipher suite"
            " for its key: every client's handshake fails"
        )
    chosen = client.selected_alpn_protocol() if isinstance(client, ssl.SSLObject) else None
    if chosen not in (None, "http/1.1"):
        raise ConfigError(
            f"ssl: the context chooses {chosen!r} by ALPN for a client that offers h2 and"
            " http/1.1, and this server speaks HTTP/1.1 only: such a client (a browser,"
            " curl) fails (set_alpn_protocols(['http/1.1']) on it, or none)"
        )


def _say_if_tls_1_2_refused(context: ssl.SSLContext) -> None:
    """Warn if ``context`` has no cipher suite a TLS 1.2 client may use with
    its certificate's key (ssl_ciphers for another kind of key: ECDHE-RSA-...
    with an ECDSA certificate): TLS 1.3 clients are served, whose suites
    set_ciphers() does not set, and every TLS 1.2 client is refused."""
    failed = _handshake_in_memory(context, maximum=ssl.TLSVersion.TLSv1_2)
    if isinstance(failed, ssl.SSLError) and failed.reason == "NO_SHARED_CIPHER":
        logger.warning(
            "TLS: ssl_ciphers leaves TLS 1.2 no cipher suite the certificate's key can use:"
            " TLS 1.2 clients are refused (TLS 1.3's suites are not set by ssl_ciphers)"
        )


def _handshake_in_memory(
    context: ssl.SSLContext,
    alpn: list[str] | None = None,
    maximum: ssl.TLSVersion | None = None,
) -> ssl.SSLObject | ssl.SSLError | None:
    """The client's end of a TLS handshake in memory with ``context`` (the
    client offering ``alpn``, and TLS up to ``maximum``, if given), once done;
    the server's error if it failed there; None if it failed otherwise."""
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    # Every suite OpenSSL has, as some client may offer (Python's own list
    # leaves out those with SHA-1 or RSA key exchange, which a server may take).
    client_context.set_ciphers("ALL:@SECLEVEL=0")
    if alpn is not None:
        client_context.set_alpn_protocols(alpn)
    if maximum is not None:
        client_context.maximum_version = maximum
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server)
    server = context.wrap_bio(to_server, to_client, server_side=True)
    try:
        for _ in range(8):  # (a handshake takes two or three rounds)
            try:
                client.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                return client
            try:
                server.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                return exc
    except (ssl.SSLError, ValueError):
        return None
    return None


def say_if_not_valid(certificate: str | None, certfile: str | None = None) -> None:
    """Warn if ``certificate`` (PEM: the one the server serves) has expired,
    or is not valid yet: every client that checks it refuses the server. So
    for each certificate after the first in ``certfile`` (ssl_certfile: the
    chain served after it, its intermediates), which clients check as well."""
    if certificate is not None:
        _say_if_not_valid(ssl.PEM_cert_to_DER_cert(certificate), "the server's certificate", "")
    if certfile is None:
        return
    try:
        with open(certfile, "rb") as file:
            pems = _PEM_CERTIFICATE_BLOCK.findall(file.read())
    except OSError:  # (loaded a moment ago: gone since, nothing to say of it)
        return
    for number, pem in enumerate(pems[1:], 2):
        try:
            der = ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))
        except ValueError:  # (not base64: OpenSSL took it, or stopped before it)
            continue
        _say_if_not_valid(
            der,
            f"certificate {number} of ssl_certfile (its chain, after the server's)",
            " that need it",
        )


def _say_if_not_valid(der: bytes, which: str, clients: str) -> None:
    valid = validity(der)
    if valid is None:
        return
    not_before, not_after = valid
    now = datetime.now(UTC)
    if now > not_after:
        when, what = not_after, "expired on"
    elif now < not_before:
        when, what = not_before, "is not valid until"
    else:
        return
    refused = "clients refuse it" if not clients else f"clients{clients} refuse the server"
    logger.warning("TLS: %s %s %s: %s", which, what, f"{when:%Y-%m-%d %H:%M:%S} UTC", refused)


#: The alerts (OpenSSL's reasons) a TLS client sends when it refuses the
#: server's certificate, and what each says of it: OpenSSL's words alone read as
#: though the server had refused a client's certificate.
_SERVER_CERTIFICATE_REFUSED = {
    "TLSV1_ALERT_UNKNOWN_CA": (
        ": its CA is not one the client trusts, or its intermediates are missing from ssl_certfile"
    ),
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": ": it, or one of its chain, has expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "",
}


def failure_hint(error: ssl.SSLError, reason: str) -> str:
    """What a failed handshake's ``error`` (OpenSSL's ``reason``) means, for
    its log line (`` (...)``), where OpenSSL's words alone mislead; else ""."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        # (Which: expired, a CA not trusted, ...: OpenSSL's reason says none.)
        return f" (the client's certificate: {error.verify_message})"
    refused = _SERVER_CERTIFICATE_REFUSED.get(reason)
    if refused is not None:  # (an alert from the client)
        return f" (the client refused the server's certificate{refused})"
    return " (plain HTTP on the TLS port?)" if reason == "HTTP_REQUEST" else ""


def watch_handshakes(context: ssl.SSLContext, failed: Callable[[ssl.SSLError, bool], None]) -> None:
    """Have ``failed(error, proxy_header)`` called for each TLS handshake
    ``context`` fails (``proxy_header``: the client's first bytes began a
    PROXY protocol header, which no TLS client sends: a balancer's).

    asyncio and uvloop keep such a failure to themselves (a DEBUG line in
    asyncio's debug mode at most): a client refused for its certificate or
    its TLS version, plain HTTP on the TLS port, left no trace. Both make
    each connection's TLS with ``context.wrap_bio()``, which makes an
    instance of ``context.sslobject_class``: a subclass of it sees the
    handshake's error as it goes up (its "want more bytes" signals pass).
    It looks at the client's first bytes once, at the handshake's first
    call that has some (read from the incoming BIO and written back: they
    are all it holds), as OpenSSL takes them and says only
    WRONG_VERSION_NUMBER of a header.
    """

    class WatchedSSLObject(context.sslobject_class):  # type: ignore[name-defined,misc]
        _unread: ssl.MemoryBIO | None = None  # (the incoming BIO, until the first bytes)
        _proxy_header = False

        @classmethod
        def _create(cls, incoming: ssl.MemoryBIO, *args: Any, **kwargs: Any) -> Any:
            # (What wrap_bio() calls, which alone is handed the incoming BIO.)
            sslobj = super()._create(incoming, *args, **kwargs)
            sslobj._unread = incoming
            return sslobj

        def do_handshake(self) -> None:
            unread = self._unread
            if unread is not None and unread.pending:
                self._unread = None
                self._proxy_header = _begins_proxy_header(unread)
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                failed(exc, self._proxy_header)
                raise

    context.sslobject_class = WatchedSSLObject


def _begins_proxy_header(incoming: ssl.MemoryBIO) -> bool:
    """Whether the bytes ``incoming`` holds (a connection's first) begin a PROXY
    protocol header; they are read, and written back as they were."""
    data = incoming.read()
    try:
        incoming.write(data)
    except ssl.SSLError:  # (the client's end came with them: OpenSSL gets nothing)
        return False
    return begins_proxy_header(data)
