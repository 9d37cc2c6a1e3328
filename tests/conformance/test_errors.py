"""Every way a fetch can fail ends as one typed error in the item's one result."""

from __future__ import annotations

import pytest

from polyfetch import testing as t
from tests.conftest import ISOLATED_NETWORK


def test_connection_refused_is_retried_then_connect_error(harness, servers):
    t.check_connection_refused_is_retried_then_connect_error(harness, servers)


@pytest.mark.skipif(
    not ISOLATED_NETWORK,
    reason="needs a private network namespace "
    "(scripts/test provides one) so that no DNS query leaves the machine",
)
def test_dns_failure(harness, servers):
    t.check_dns_failure(harness, servers)


@pytest.mark.parametrize(("path", "error"), t.BROKEN_RESPONSES.items())
def test_malformed_and_broken_responses(harness, servers, path, error):
    t.check_malformed_and_broken_responses(harness, servers, path=path)


def test_read_errors_are_retried(harness, servers):
    t.check_read_errors_are_retried(harness, servers)


def test_protocol_errors_are_not_retried(harness, servers):
    t.check_protocol_errors_are_not_retried(harness, servers)


def test_redirect_loop(harness, servers):
    t.check_redirect_loop(harness, servers)


@pytest.mark.parametrize("target", t.OTHER_SCHEMES)
def test_redirect_to_other_scheme_is_refused(harness, servers, target):
    t.check_redirect_to_other_scheme_is_refused(harness, servers, target=target)
