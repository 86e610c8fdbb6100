"""anonymise_address: IPv4 keeps two octets, IPv6 keeps 48 bits, anything else is dropped."""

import pytest

from vault.audit.addresses import anonymise_address


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.77", "203.0.0.0"),
        ("10.1.2.3", "10.1.0.0"),
        (" 192.168.255.255 ", "192.168.0.0"),
        ("2001:db8:abcd:1234:5678:9abc:def0:1234", "2001:db8:abcd::"),
        ("2001:DB8:ABCD::1", "2001:db8:abcd::"),
        ("::1", "::"),
        # IPv4-mapped IPv6: the IPv4 part sits in the low bits and would survive a /48 cut.
        ("::ffff:203.0.113.77", "203.0.0.0"),
        ("fe80::1%eth0", "fe80::"),  # the zone (an interface name) is dropped
    ],
)
def test_anonymises(address: str, expected: str) -> None:
    assert anonymise_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [None, "", "testclient", "256.1.1.1", "1.2.3", "203.0.113.77:8080", "x" * 500],
)
def test_drops_anything_else(address: str | None) -> None:
    assert anonymise_address(address) is None
