"""Who counts as one client for the login and registration throttles."""

import pytest

from aurora.throttling import client_network


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("203.0.113.10", "203.0.113.10"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.10", "203.0.113.10"),
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_client_counts_as_its_64_and_an_ipv4_client_as_its_address(ip, network):
    assert client_network(ip) == network


def test_neighbouring_ipv6_64s_are_different_clients():
    assert client_network("2001:db8:1:2::1") != client_network("2001:db8:1:3::1")
