"""Run inside a build (``RUN python3 service_probe.py ...``): try to write to the farm's services.

Standard library only (it runs in the base image). For each service it
prints whether the port answers and what the write got back, one line
each, and exits non-zero if any write was accepted:

    python3 service_probe.py REDIS_HOST:PORT MONGO_HOST:PORT REGISTRY_HOST:PORT DB MARKER

The writes: Redis ``SET MARKER``, MongoDB ``insert`` of ``{marker: MARKER}``
into ``DB.MARKER``, and a blob upload to repository ``MARKER`` of the registry.
"""

from __future__ import annotations

import socket
import struct
import sys
import urllib.error
import urllib.request


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def redis_write(address: str, marker: str) -> tuple[str, bool]:
    command = [b"SET", marker.encode(), b"from-a-build"]
    payload = b"*%d\r\n" % len(command) + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in command)
    with socket.create_connection(split(address), timeout=5) as sock:
        sock.sendall(payload)
        reply = sock.recv(4096).decode(errors="replace").strip()
    return reply, reply.startswith("+OK")


def bson(document: dict[str, object]) -> bytes:
    """Just enough BSON for an insert command: strings and documents."""
    body = b""
    for key, value in document.items():
        name = key.encode() + b"\x00"
        if isinstance(value, str):
            text = value.encode() + b"\x00"
            body += b"\x02" + name + struct.pack("<i", len(text)) + text
        elif isinstance(value, list):
            body += b"\x04" + name + bson({str(i): item for i, item in enumerate(value)})
        elif isinstance(value, dict):
            body += b"\x03" + name + bson(value)
        else:
            raise TypeError(type(value).__name__)
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def bson_value(reply: bytes, key: str, kind: bytes) -> bytes | None:
    marker = kind + key.encode() + b"\x00"
    at = reply.find(marker)
    return None if at < 0 else reply[at + len(marker):]


def mongo_write(address: str, db: str, marker: str) -> tuple[str, bool]:
    command = bson({"insert": marker, "documents": [{"marker": marker}], "$db": db})
    body = struct.pack("<I", 0) + b"\x00" + command  # OP_MSG: flags, section kind 0
    header = struct.pack("<iiii", 16 + len(body), 1, 0, 2013)
    with socket.create_connection(split(address), timeout=5) as sock:
        sock.sendall(header + body)
        length = struct.unpack("<i", sock.recv(4, socket.MSG_WAITALL))[0]
        reply = sock.recv(length - 4, socket.MSG_WAITALL)
    code = bson_value(reply, "code", b"\x10")
    message = bson_value(reply, "errmsg", b"\x02")
    text = message[4:4 + struct.unpack("<i", message[:4])[0] - 1].decode() if message else ""
    if code is None:
        return "insert accepted", True
    return f"code {struct.unpack('<i', code[:4])[0]}: {text}", False


def registry_write(address: str, marker: str) -> tuple[str, bool]:
    request = urllib.request.Request(f"http://{address}/v2/{marker}/blobs/uploads/",
                                     method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return f"HTTP {response.status}", True
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}", False


def reachable(address: str) -> str:
    try:
        with socket.create_connection(split(address), timeout=5):
            return "reachable"
    except OSError as exc:
        return f"unreachable ({exc})"


def main() -> int:
    redis, mongo, registry, db, marker = sys.argv[1:6]
    accepted = False
    for name, address, write in (
            ("redis", redis, lambda: redis_write(redis, marker)),
            ("mongo", mongo, lambda: mongo_write(mongo, db, marker)),
            ("registry", registry, lambda: registry_write(registry, marker))):
        state = reachable(address)
        if state != "reachable":
            print(f"probe {name} {address}: {state}", flush=True)
            continue
        reply, ok = write()
        accepted = accepted or ok
        print(f"probe {name} {address}: {state}; write {'ACCEPTED' if ok else 'refused'}: "
              f"{reply}", flush=True)
    return 1 if accepted else 0


if __name__ == "__main__":
    sys.exit(main())
