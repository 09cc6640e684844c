"""Port numbers as users name them: the service and the IANA range a port belongs to.

Service names come from the system's services database (/etc/services, through
socket.getservbyport) and, where it is missing or silent, from a built-in table of the ports
people meet most, so output does not depend on the machine it runs on more than it must.
"""

from __future__ import annotations

from functools import lru_cache

WELL_KNOWN = "well-known"
REGISTERED = "registered"
DYNAMIC = "dynamic"

BUILTIN: dict[tuple[str, int], str] = {
    **{("tcp", p): n for p, n in (
        (20, "ftp-data"), (21, "ftp"), (22, "ssh"), (23, "telnet"), (25, "smtp"), (53, "dns"),
        (80, "http"), (88, "kerberos"), (110, "pop3"), (111, "sunrpc"), (119, "nntp"),
        (135, "msrpc"), (139, "netbios-ssn"), (143, "imap"), (179, "bgp"), (389, "ldap"),
        (443, "https"), (445, "smb"), (465, "smtps"), (502, "modbus"), (514, "shell"),
        (587, "submission"), (631, "ipp"), (636, "ldaps"), (853, "dns-over-tls"),
        (873, "rsync"), (993, "imaps"), (995, "pop3s"), (1080, "socks"), (1433, "mssql"),
        (1521, "oracle"), (1883, "mqtt"), (2049, "nfs"), (2379, "etcd"), (3128, "squid"),
        (3306, "mysql"), (3389, "rdp"), (5060, "sip"), (5222, "xmpp"), (5432, "postgresql"),
        (5672, "amqp"), (5900, "vnc"), (6379, "redis"), (6443, "kubernetes"),
        (6667, "irc"), (8000, "http-alt"), (8080, "http-alt"), (8443, "https-alt"),
        (9092, "kafka"), (9200, "elasticsearch"), (11211, "memcached"), (27017, "mongodb"))},
    **{("udp", p): n for p, n in (
        (53, "dns"), (67, "dhcp"), (68, "dhcp"), (69, "tftp"), (123, "ntp"),
        (137, "netbios-ns"), (138, "netbios-dgm"), (161, "snmp"), (162, "snmp-trap"),
        (443, "quic"), (500, "isakmp"), (514, "syslog"), (546, "dhcpv6"), (547, "dhcpv6"),
        (1194, "openvpn"), (1812, "radius"), (1900, "ssdp"), (2152, "gtp-u"),
        (3478, "stun"), (3544, "teredo"), (4500, "ipsec-nat-t"), (4789, "vxlan"),
        (5060, "sip"), (5353, "mdns"), (5355, "llmnr"), (6081, "geneve"),
        (51820, "wireguard"))},
}


def iana_class(port: int) -> str:
    """The IANA range of a port: well-known 0-1023, registered 1024-49151, dynamic above."""
    if port < 1024:
        return WELL_KNOWN
    if port < 49152:
        return REGISTERED
    return DYNAMIC


@lru_cache(maxsize=8192)
def service_name(proto: str, port: int) -> str:
    """The service a port names ('' if none is known)."""
    if (proto, port) in BUILTIN:
        return BUILTIN[(proto, port)]
    if proto not in ("tcp", "udp"):
        return ""
    import socket  # 6 ms at start (socket pulls in selectors), for reports that name no port

    try:
        return socket.getservbyport(port, proto)
    except (OSError, OverflowError):
        return ""


PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6", 47: "gre", 50: "esp", 51: "ah",
               132: "sctp", 2: "igmp", 4: "ipip", 41: "ipv6", 59: "ipv6-nonxt", 89: "ospf",
               103: "pim", 112: "vrrp"}


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))
