"""A throwaway PostgreSQL server for the tests, started from the
distribution's binaries (``apt-get install postgresql``).

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the
``postgres`` user that the package creates. The data directory and the
socket directory live in a fresh temporary directory; the server listens on
a free loopback port with ``fsync=off`` (a test server needs no durability)
and password authentication over TCP, so that a wrong password is testable.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "acid-test-pw"


def find_bin(name: str) -> str | None:
    """The newest installed PostgreSQL binary ``name``, or ``None``."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One running server: ``url`` reaches it as the superuser."""

    root: Path
    port: int
    user: str | None  # the OS user that runs it (None: the current one)
    #: ``synchronous_commit=off`` (faster) loses the last commits when the
    #: server process dies; a server that is killed on purpose keeps it on.
    quick_commit: bool = True

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=check
        )

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        pg_ctl = find_bin("pg_ctl")
        assert pg_ctl is not None
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        if self.quick_commit:
            options += " -c synchronous_commit=off"
        result = self._run(
            pg_ctl, "-D", str(self.data), "-l", str(self.root / "log"),
            "-o", options, "-w", "-t", "60", "start", check=False,
        )  # fmt: skip
        if result.returncode != 0:
            log = (self.root / "log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}\n{log}")

    def stop(self) -> None:
        pg_ctl = find_bin("pg_ctl")
        assert pg_ctl is not None
        self._run(
            pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False
        )

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend it started, as a power
        cut would: no shutdown, no goodbye to the clients."""
        pid = self.postmaster_pid()
        children = [pid]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(Path(stat).parent.name))
        for victim in children:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = [p for p in children if Path(f"/proc/{p}").exists()]
            if not alive or all(_zombie(p) for p in alive):
                break
            time.sleep(0.05)
        # Where nothing reaps orphans (a container's init), the dead
        # postmaster stays a zombie whose pid still "runs": pg_ctl would then
        # refuse to start. The lock file is stale: remove it, as an operator
        # who checked would.
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        (self.root / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
        (self.root / f".s.PGSQL.{self.port}").unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def missing() -> str | None:
    """Why no server can be started here, or ``None`` if one can."""
    if find_bin("initdb") is None or find_bin("pg_ctl") is None:
        return (
            "no PostgreSQL server binaries (initdb, pg_ctl); install them "
            "(apt-get install postgresql) or set ACID_TEST_POSTGRES_URL"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run initdb"
    return None


def launch(quick_commit: bool = True) -> Server:
    """Create a cluster in a new temporary directory and start it.

    ``fsync=off`` loses nothing when the server process is killed (the
    operating system keeps what it was given); ``quick_commit`` would."""
    initdb = find_bin("initdb")
    assert initdb is not None
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="acid-pg-"))
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    server = Server(root, free_port(), user, quick_commit)
    result = server._run(
        initdb, "-D", str(server.data), "-U", "postgres", "--pwfile", str(pwfile),
        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
        "--no-sync", check=False,
    )  # fmt: skip
    if result.returncode != 0:
        server.remove()
        raise RuntimeError(f"initdb failed: {result.stderr or result.stdout}")
    try:
        server.start()
    except BaseException:
        server.remove()
        raise
    return server
