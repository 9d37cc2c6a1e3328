"""HTTPS: verified against the system store by default, a custom CA bundle, or not verified."""

from __future__ import annotations

from polyfetch import TLSError


def test_custom_ca_bundle(servers, one):
    r = one(f"{servers.https}/bytes/100", ca_bundle=servers.ca_file)
    assert r.error is None and r.status == 200 and r.size == 100


def test_default_verification_rejects_unknown_ca(servers, one):
    r = one(f"{servers.https}/bytes/100", retries=0)
    assert isinstance(r.error, TLSError), r.error


def test_verification_off(servers, one):
    r = one(f"{servers.https}/bytes/100", verify=False)
    assert r.error is None and r.status == 200


def test_hostname_must_match(servers, one):
    # the certificate names only localhost
    url = servers.https.replace("localhost", "127.0.0.1") + "/bytes/1"
    r = one(url, ca_bundle=servers.ca_file, retries=0)
    assert isinstance(r.error, TLSError), r.error
