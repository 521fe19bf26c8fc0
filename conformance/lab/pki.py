"""The lab's PKI: two CAs, serving and client certificates, and signing keys, in one directory.

`ensure_pki(directory)` makes what is missing and returns a `Pki` naming every file. Files (all PEM;
private keys are PKCS#8, mode 0600; certificates mode 0644):

    ca.crt, ca.key             cluster CA: kube-apiserver trusts it for clients, clients for servers
    alb-ca.crt, alb-ca.key     an independent CA standing in for a public CA the cluster does not know
    serving-<name>.crt/.key    serving certs: kube-apiserver, kube-oidc-proxy, issuer, kwok by the cluster
                               CA, alb by alb-ca; SANs IP 127.0.0.1, IP ::1, DNS localhost plus `hosts`
    client-<name>.crt/.key     client certs by the cluster CA; CLIENT_IDENTITIES gives their subjects
    sa.key, sa.pub             service-account token signing pair (RSA 2048; sa.pub is SubjectPublicKeyInfo)
    oidc-signing.key           the OIDC issuer's signing key (RSA 2048)
    oidc-rogue.key             an unrelated RSA 2048 key, to mint tokens with a bad signature
    .pki.lock                  serialises concurrent callers (e.g. pytest-xdist workers)

Certificates use EC P-256 keys because generating them takes microseconds; only the three JWT signing keys
are RSA, since RS256 is what every OIDC verifier accepts. The whole PKI is made in well under a second.

Idempotence: an existing file is kept byte for byte (same mtime) unless it is unusable: it does not parse,
its key does not match its certificate, it no longer chains to its CA (because the CA was remade), its
subject, usage or SANs no longer cover what is asked, or it expires within the renewal margin. Unusable
files are replaced, so deleting `ca.key` and calling again reissues every leaf under the new CA.

Errors: a directory that cannot be written raises `LabError` (chained from the `OSError`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conformance.errors import LabError

__all__ = [
    "BASE_SANS",
    "CLIENT_IDENTITIES",
    "DEFAULT_HOSTS",
    "CertKeyPair",
    "ClientCerts",
    "ClientIdentity",
    "Pki",
    "ServingCerts",
    "ensure_pki",
    "make_client_cert",
    "make_serving_cert",
]

# Lifetimes asked for by the lab design: long enough that nobody renews by hand, short enough to look real.
CA_VALIDITY = dt.timedelta(days=365)
LEAF_VALIDITY = dt.timedelta(days=90)
# Reissue before expiry so a lab started today still works for the length of a long test run.
CA_RENEW_BEFORE = dt.timedelta(days=30)
LEAF_RENEW_BEFORE = dt.timedelta(days=7)
# Back-date notBefore so a peer whose clock is slightly behind still accepts a fresh certificate.
CLOCK_SKEW = dt.timedelta(minutes=5)
RSA_KEY_SIZE = 2048

KEY_MODE = 0o600
CERT_MODE = 0o644
DIR_MODE = 0o700

# Every serving cert answers on loopback by both address families and by name, whatever `hosts` adds.
BASE_SANS: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")

CA_NAME = "ca"
ALB_CA_NAME = "alb-ca"
SA_KEY_NAME = "sa.key"
SA_PUB_NAME = "sa.pub"
OIDC_SIGNING_KEY_NAME = "oidc-signing.key"
OIDC_ROGUE_KEY_NAME = "oidc-rogue.key"
_LOCK_NAME = ".pki.lock"

# Names become file names; keep them to one safe path component.
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class CertKeyPair:
    """A certificate file and its private key file."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientIdentity:
    """The subject of a client certificate, i.e. the user and groups kube-apiserver derives from it."""

    common_name: str
    organizations: tuple[str, ...] = ()


# Client certs signed by the cluster CA. CN is the Kubernetes user name and O the groups.
CLIENT_IDENTITIES: Mapping[str, ClientIdentity] = MappingProxyType(
    {
        "admin": ClientIdentity(common_name="lab-admin", organizations=("system:masters",)),
        "kube-oidc-proxy": ClientIdentity(common_name="kube-oidc-proxy", organizations=("lab:proxies",)),
        "openunison": ClientIdentity(common_name="openunison-proxy", organizations=("lab:proxies",)),
        "kwok": ClientIdentity(common_name="system:node:kwok-node-0", organizations=("system:nodes",)),
        "kube-controller-manager": ClientIdentity(common_name="system:kube-controller-manager"),
        "kube-scheduler": ClientIdentity(common_name="system:kube-scheduler"),
        "apiserver-kubelet-client": ClientIdentity(
            common_name="kube-apiserver-kubelet-client", organizations=("system:masters",)
        ),
    }
)
# Serving certs signed by the cluster CA; `alb` is signed by alb-ca and handled apart.
CLUSTER_SERVING_NAMES: tuple[str, ...] = ("kube-apiserver", "kube-oidc-proxy", "issuer", "kwok")
ALB_SERVING_NAME = "alb"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingCerts:
    """Serving certificates (files serving-<name>.crt/.key)."""

    kube_apiserver: CertKeyPair
    kube_oidc_proxy: CertKeyPair
    issuer: CertKeyPair
    kwok: CertKeyPair  # kubelet serving cert for kwok's fake nodes
    alb: CertKeyPair  # signed by alb-ca, not by the cluster CA


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCerts:
    """Client certificates (files client-<name>.crt/.key), all signed by the cluster CA."""

    admin: CertKeyPair
    kube_oidc_proxy: CertKeyPair
    openunison: CertKeyPair
    kwok: CertKeyPair
    kube_controller_manager: CertKeyPair
    kube_scheduler: CertKeyPair
    apiserver_kubelet_client: CertKeyPair


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    """Paths of every file in the lab PKI directory."""

    directory: Path
    ca: CertKeyPair
    alb_ca: CertKeyPair
    serving: ServingCerts
    clients: ClientCerts
    sa_key: Path
    sa_pub: Path
    oidc_signing_key: Path
    oidc_rogue_key: Path
    hosts: tuple[str, ...]

    def make_serving_cert(
        self, name: str, *, hosts: Iterable[str] | None = None, ca: CertKeyPair | None = None
    ) -> CertKeyPair:
        """Ensure serving-<name>.crt/.key signed by `ca` (default: cluster CA) for `hosts` (default: ours)."""
        return make_serving_cert(
            self.directory, name, hosts=self.hosts if hosts is None else hosts, ca=ca or self.ca
        )

    def make_client_cert(
        self, name: str, identity: ClientIdentity, *, ca: CertKeyPair | None = None
    ) -> CertKeyPair:
        """Ensure client-<name>.crt/.key with `identity`, signed by `ca` (default the cluster CA)."""
        return make_client_cert(self.directory, name, identity, ca=ca or self.ca)


def ensure_pki(directory: Path, *, hosts: Iterable[str] = DEFAULT_HOSTS) -> Pki:
    """Create whatever part of the lab PKI is missing or unusable in `directory`, and name every file.

    `hosts` (IP addresses or DNS names) are added to BASE_SANS in every serving certificate.
    """
    host_tuple = tuple(hosts)
    wanted_sans = _general_names(host_tuple)
    with _locked(directory):
        ca = _ensure_ca(directory, CA_NAME, "conformance-lab-ca")
        alb_ca = _ensure_ca(directory, ALB_CA_NAME, "conformance-lab-alb-ca")
        serving = {name: _ensure_serving(directory, name, wanted_sans, ca) for name in CLUSTER_SERVING_NAMES}
        serving[ALB_SERVING_NAME] = _ensure_serving(directory, ALB_SERVING_NAME, wanted_sans, alb_ca)
        clients = {
            name: _ensure_client(directory, name, identity, ca)
            for name, identity in CLIENT_IDENTITIES.items()
        }
        sa_key = _ensure_rsa_key(directory / SA_KEY_NAME)
        _write_if_changed(
            directory / SA_PUB_NAME,
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            CERT_MODE,
        )
        _ensure_rsa_key(directory / OIDC_SIGNING_KEY_NAME)
        _ensure_rsa_key(directory / OIDC_ROGUE_KEY_NAME)
    return Pki(
        directory=directory,
        ca=ca.pair,
        alb_ca=alb_ca.pair,
        serving=ServingCerts(
            kube_apiserver=serving["kube-apiserver"],
            kube_oidc_proxy=serving["kube-oidc-proxy"],
            issuer=serving["issuer"],
            kwok=serving["kwok"],
            alb=serving[ALB_SERVING_NAME],
        ),
        clients=ClientCerts(
            admin=clients["admin"],
            kube_oidc_proxy=clients["kube-oidc-proxy"],
            openunison=clients["openunison"],
            kwok=clients["kwok"],
            kube_controller_manager=clients["kube-controller-manager"],
            kube_scheduler=clients["kube-scheduler"],
            apiserver_kubelet_client=clients["apiserver-kubelet-client"],
        ),
        sa_key=directory / SA_KEY_NAME,
        sa_pub=directory / SA_PUB_NAME,
        oidc_signing_key=directory / OIDC_SIGNING_KEY_NAME,
        oidc_rogue_key=directory / OIDC_ROGUE_KEY_NAME,
        hosts=host_tuple,
    )


def make_serving_cert(
    directory: Path, name: str, *, hosts: Iterable[str] = DEFAULT_HOSTS, ca: CertKeyPair | None = None
) -> CertKeyPair:
    """Ensure serving-<name>.crt/.key in `directory`, signed by `ca` (default `directory`/ca.crt).

    For components added later, e.g. load-balancer stand-ins. The CA must exist (call `ensure_pki` first).
    """
    _check_name(name)
    with _locked(directory):
        authority = _load_authority(ca or _pair(directory, CA_NAME))
        return _ensure_serving(directory, name, _general_names(tuple(hosts)), authority)


def make_client_cert(
    directory: Path, name: str, identity: ClientIdentity, *, ca: CertKeyPair | None = None
) -> CertKeyPair:
    """Ensure client-<name>.crt/.key in `directory` for `identity`, signed by `ca` (default: cluster CA)."""
    _check_name(name)
    with _locked(directory):
        authority = _load_authority(ca or _pair(directory, CA_NAME))
        return _ensure_client(directory, name, identity, authority)


def make_expired_serving_cert(directory: Path, name: str, *, hosts: Iterable[str] = DEFAULT_HOSTS) -> CertKeyPair:
    """A throwaway serving cert signed by the lab CA that expired a day ago (tests: an expired certificate
    must fail the tls cell). Always written anew; never used by the lab itself."""
    _check_name(name)
    with _locked(directory):
        authority = _load_authority(_pair(directory, CA_NAME))
        pair = _pair(directory, f"expired-{name}")
        key = _new_cert_key()
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(authority.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30))
            .not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName(
                    sorted(_general_names(tuple(hosts)), key=lambda n: (type(n).__name__, str(n.value)))
                ),
                critical=False,
            )
        )
        cert = builder.sign(authority.key, hashes.SHA256())
        _write_atomic(pair.key, _key_pem(key), KEY_MODE)
        _write_atomic(pair.cert, cert.public_bytes(serialization.Encoding.PEM), CERT_MODE)
        return pair


# --- internals -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Authority:
    pair: CertKeyPair
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"certificate name {name!r} must be lower-case letters, digits and '-'")


def _pair(directory: Path, stem: str) -> CertKeyPair:
    return CertKeyPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # flock is per open file description, so internal helpers must not take it again.
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, KEY_MODE)
    except OSError as exc:
        raise LabError(f"cannot use PKI directory {directory}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    except OSError as exc:
        raise LabError(f"cannot write the lab PKI in {directory}: {exc}") from exc
    finally:
        os.close(fd)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_cert_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _spki(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return b""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file and rename, so readers never see half a PEM and a key is never 0644."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # explicit: the umask must not decide a certificate's mode
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_if_changed(path: Path, data: bytes, mode: int) -> None:
    try:
        if path.read_bytes() == data:
            _fix_mode(path, mode)
            return
    except FileNotFoundError:
        pass
    _write_atomic(path, data, mode)


def _fix_mode(path: Path, mode: int) -> None:
    # A key someone made group-readable is tightened in place; its content (and mtime) stay.
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)


def _load_private_key(path: Path) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (FileNotFoundError, ValueError, TypeError):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return key
    return None


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def _load_authority(pair: CertKeyPair) -> _Authority:
    cert = _load_cert(pair.cert)
    key = _load_private_key(pair.key)
    if cert is None or key is None or _spki(cert.public_key()) != _spki(key.public_key()):
        raise LabError(f"no usable CA at {pair.cert} / {pair.key}; run ensure_pki first")
    return _Authority(pair, cert, key)


def _subject(identity: ClientIdentity) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in identity.organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name))
    return x509.Name(attributes)


def _general_names(hosts: tuple[str, ...]) -> frozenset[x509.GeneralName]:
    names: set[x509.GeneralName] = set()
    for host in (*BASE_SANS, *hosts):
        try:
            names.add(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.add(x509.DNSName(host))
    return frozenset(names)


def _still_fresh(cert: x509.Certificate, margin: dt.timedelta) -> bool:
    now = _now()
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - margin > now


def _ensure_ca(directory: Path, stem: str, common_name: str) -> _Authority:
    pair = _pair(directory, stem)
    cert = _load_cert(pair.cert)
    key = _load_private_key(pair.key)
    if (
        cert is not None
        and key is not None
        and _spki(cert.public_key()) == _spki(key.public_key())
        and _still_fresh(cert, CA_RENEW_BEFORE)
    ):
        _fix_mode(pair.key, KEY_MODE)
        return _Authority(pair, cert, key)

    key = _new_cert_key()
    now = _now()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "conformance lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        # pathlen 0: this CA signs only leaves, so a leaked leaf key can never act as a CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        # Python 3.13's VERIFY_X509_STRICT wants the AKI even on a root.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_atomic(pair.key, _key_pem(key), KEY_MODE)
    _write_atomic(pair.cert, cert.public_bytes(serialization.Encoding.PEM), CERT_MODE)
    return _Authority(pair, cert, key)


def _leaf_is_usable(
    pair: CertKeyPair,
    authority: _Authority,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: frozenset[x509.GeneralName],
) -> bool:
    cert = _load_cert(pair.cert)
    key = _load_private_key(pair.key)
    if cert is None or key is None or _spki(cert.public_key()) != _spki(key.public_key()):
        return False
    try:
        cert.verify_directly_issued_by(authority.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False  # typically: the CA was remade since this leaf was issued
    if cert.subject != subject or not _still_fresh(cert, LEAF_RENEW_BEFORE):
        return False
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        present: frozenset[x509.GeneralName] = frozenset()
        if sans:
            present = frozenset(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    # A superset is fine: callers asking for fewer hosts must not make certs flip back and forth.
    return usage in eku and sans <= present


def _ensure_leaf(
    pair: CertKeyPair,
    authority: _Authority,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: frozenset[x509.GeneralName],
) -> CertKeyPair:
    if _leaf_is_usable(pair, authority, subject, usage, sans):
        _fix_mode(pair.key, KEY_MODE)
        return pair

    key = _new_cert_key()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        # Never outlive the issuer: verifiers would reject the tail end anyway.
        .not_valid_after(min(now + LEAF_VALIDITY, authority.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # EC keys sign in TLS 1.2/1.3 key exchange; key encipherment applies to RSA only.
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False
        )
    )
    if sans:
        # Sorted so that the same request always yields the same extension bytes.
        ordered = sorted(sans, key=lambda name: (type(name).__name__, str(name.value)))
        builder = builder.add_extension(x509.SubjectAlternativeName(ordered), critical=False)
    cert = builder.sign(authority.key, hashes.SHA256())
    _write_atomic(pair.key, _key_pem(key), KEY_MODE)
    _write_atomic(pair.cert, cert.public_bytes(serialization.Encoding.PEM), CERT_MODE)
    return pair


def _ensure_serving(
    directory: Path, name: str, sans: frozenset[x509.GeneralName], authority: _Authority
) -> CertKeyPair:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return _ensure_leaf(
        _pair(directory, f"serving-{name}"), authority, subject, ExtendedKeyUsageOID.SERVER_AUTH, sans
    )


def _ensure_client(
    directory: Path, name: str, identity: ClientIdentity, authority: _Authority
) -> CertKeyPair:
    return _ensure_leaf(
        _pair(directory, f"client-{name}"),
        authority,
        _subject(identity),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        frozenset(),
    )


def _ensure_rsa_key(path: Path) -> rsa.RSAPrivateKey:
    key = _load_private_key(path)
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= RSA_KEY_SIZE:
        _fix_mode(path, KEY_MODE)
        return key
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    _write_atomic(path, _key_pem(new_key), KEY_MODE)
    return new_key
