"""HTTPS: verified against the system store by default, a custom CA bundle, or not verified."""

from __future__ import annotations

from polyfetch.errors import TLSError
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers


@check
def check_custom_ca_bundle(harness: Harness, servers: Servers) -> None:
    """ca_bundle= verifies against that CA only."""
    r = harness.one(f"{servers.https}/bytes/100", ca_bundle=servers.ca_file)
    assert r.error is None and r.status == 200 and r.size == 100, shown(r)


@check
def check_default_verification_rejects_unknown_ca(harness: Harness, servers: Servers) -> None:
    """By default a certificate from an unknown CA is a TLSError."""
    r = harness.one(f"{servers.https}/bytes/100", retries=0)
    assert isinstance(r.error, TLSError), shown(r)


@check
def check_verification_off(harness: Harness, servers: Servers) -> None:
    """verify=False accepts any certificate."""
    r = harness.one(f"{servers.https}/bytes/100", verify=False)
    assert r.error is None and r.status == 200, shown(r)


@check
def check_hostname_must_match(harness: Harness, servers: Servers) -> None:
    """A certificate for another name is a TLSError, even from a trusted CA."""
    # the certificate names only localhost
    url = servers.https.replace("localhost", "127.0.0.1") + "/bytes/1"
    r = harness.one(url, ca_bundle=servers.ca_file, retries=0)
    assert isinstance(r.error, TLSError), shown(r)
