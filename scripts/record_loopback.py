"""Record real loopback traffic into captures/loopback-sample.pcap (needs root and tcpdump).

The traffic is made here, on 127.0.0.1 only: an HTTP server answering a few clients (one
keeps its connection alive for two requests), a connection to a closed port (refused with
RST), a UDP request/response pair and a UDP datagram to a closed port (answered with ICMP port
unreachable). The file is the project's sample of genuine kernel-made traffic: real options,
real timing, real checksum offload (locally sent packets often carry bad checksums).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import socket
import subprocess
import threading
import time
from pathlib import Path

HTTP_PORT = 18080
UDP_PORT = 18053
CLOSED_TCP = 18081
CLOSED_UDP = 18054


class Quiet(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass


def traffic(root: Path) -> None:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", HTTP_PORT), lambda *a: Quiet(*a, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", UDP_PORT))

    def echo() -> None:
        data, peer = udp.recvfrom(2048)
        udp.sendto(data.upper(), peer)

    threading.Thread(target=echo, daemon=True).start()
    time.sleep(0.2)
    for path in ("/README.md", "/captures/README.md", "/nope"):
        c = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=5)
        c.request("GET", path)
        c.getresponse().read()
        c.close()
        time.sleep(0.05)
    keep = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=5)
    for path in ("/pyproject.toml", "/docs/tracking.md"):
        keep.request("GET", path)
        keep.getresponse().read()
    keep.close()
    with contextlib.suppress(OSError):  # refused, as intended
        socket.create_connection(("127.0.0.1", CLOSED_TCP), timeout=2).close()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(2)
    client.sendto(b"what time is it", ("127.0.0.1", UDP_PORT))
    client.recvfrom(2048)
    client.sendto(b"anyone there?", ("127.0.0.1", CLOSED_UDP))
    time.sleep(0.3)
    server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent.parent / "captures"
                        / "loopback-sample.pcap")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    flt = (f"port {HTTP_PORT} or port {UDP_PORT} or port {CLOSED_TCP} or port {CLOSED_UDP}"
           " or icmp")
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-w", str(args.out), flt],
                            stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        traffic(root)
    finally:
        time.sleep(0.5)
        dump.terminate()
        dump.wait(timeout=10)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
