"""Client address anonymising for the audit log and the access log."""

import ipaddress

IPV4_KEPT_PREFIX = 16
IPV6_KEPT_PREFIX = 48


def anonymise_address(address: str | None) -> str | None:
    """IPv4: zero the last two octets; IPv6: keep the first 48 bits. Anything else -> None.

    An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) is treated as the IPv4 address it carries,
    otherwise its whole IPv4 part would fall outside the zeroed bits and survive.
    """
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Network((ip, IPV4_KEPT_PREFIX), strict=False).network_address)
    return str(ipaddress.IPv6Network((ip, IPV6_KEPT_PREFIX), strict=False).network_address)
