"""HTTPS: verified against the system store by default, a custom CA bundle, or not verified."""

from __future__ import annotations

from polyfetch import testing as t


def test_custom_ca_bundle(harness, servers):
    t.check_custom_ca_bundle(harness, servers)


def test_default_verification_rejects_unknown_ca(harness, servers):
    t.check_default_verification_rejects_unknown_ca(harness, servers)


def test_verification_off(harness, servers):
    t.check_verification_off(harness, servers)


def test_hostname_must_match(harness, servers):
    t.check_hostname_must_match(harness, servers)
