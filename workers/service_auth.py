"""How the launcher makes each local service require the farm's credentials.

- Redis: a config file (mode 0600, so the password is not on a command
  line) with ``requirepass``.
- Registry: htpasswd (bcrypt) basic auth over plain http on loopback;
  Docker logs in, pushes, pulls and imports ``--cache-from`` that way.
- Mongo wire server: ``--auth`` with a user of the farm. Users are created
  on a server started without ``--auth`` (there is no localhost exception),
  so the user is provisioned on a private port first, then the server is
  started with ``--auth`` on its real port. A marker beside the storage
  records which credentials were provisioned, so a restart skips this.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pymongo
import pymongo.errors

from common.service_credentials import ServiceCredentials

REGISTRY_REALM = "binder-build"
#: What the farm does in MongoDB: read and write its databases, make indexes,
#: drop a test run's database. Not: create users, read other users' data.
MONGO_ROLES = [{"role": "readWriteAnyDatabase", "db": "admin"},
               {"role": "dbAdminAnyDatabase", "db": "admin"}]


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file may have had a wider mode
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def redis_config_text(port: int, credentials: ServiceCredentials) -> str:
    return (f"port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
            f"requirepass {credentials.redis_password}\n")


#: bcrypt cost of a password an operator chose (it may be guessable).
CHOSEN_PASSWORD_ROUNDS = 10
#: bcrypt cost of a password the farm generated (256 random bits): bcrypt's least.
GENERATED_PASSWORD_ROUNDS = 4


def htpasswd_line(username: str, password: str, generated: bool = False) -> str:
    """An htpasswd entry as the registry accepts it (bcrypt only).

    The registry checks the hash on every request (each layer of every push
    and pull): at cost 10 that is ~70 ms of CPU per request, at cost 4 ~1 ms.
    A slow hash protects a guessable password; a ``generated`` one is 256
    random bits, which no work factor makes safer, and its plaintext sits
    beside the hash (``credentials.json``, as private), so it gets the least.
    """
    import bcrypt

    rounds = GENERATED_PASSWORD_ROUNDS if generated else CHOSEN_PASSWORD_ROUNDS
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    return f"{username}:{hashed}\n"


def registry_config_text(address: str, storage: Path, htpasswd: Path,
                         credentials: ServiceCredentials) -> str:
    """The registry's config: filesystem storage, htpasswd auth, a fixed upload secret."""
    secret = hashlib.sha256(f"secret:{credentials.registry_password}".encode()).hexdigest()
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        f"auth:\n  htpasswd:\n    realm: {REGISTRY_REALM}\n    path: {htpasswd}\n"
        f"http:\n  addr: {address}\n  secret: {secret}\n"
    )


def mongo_marker_text(credentials: ServiceCredentials) -> str:
    digest = hashlib.sha256(
        f"{credentials.mongo_username}:{credentials.mongo_password}".encode()).hexdigest()
    return f"{credentials.mongo_username} {digest}\n"


def mongo_user_provisioned(marker: Path, credentials: ServiceCredentials) -> bool:
    try:
        return marker.read_text() == mongo_marker_text(credentials)
    except FileNotFoundError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def provision_mongo_user(program: str, storage: Path, credentials: ServiceCredentials,
                         log_path: Path, marker: Path, timeout: float = 60) -> None:
    """Create (or update) the farm's user in ``storage`` on a private port, then stop."""
    port = _free_port()
    argv = [program, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage),
            "--log-level", "WARNING"]
    with open(log_path, "ab") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=500, connect=False)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Mongo wire server did not start to create the "
                                       f"farm's user; see {log_path}") from None
                time.sleep(0.3)
        user = credentials.mongo_username
        exists = client.admin.command("usersInfo", user)["users"]
        client.admin.command("updateUser" if exists else "createUser", user,
                             pwd=credentials.mongo_password, roles=MONGO_ROLES)
    finally:
        client.close()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    write_private(marker, mongo_marker_text(credentials))
