"""A real PostgreSQL server for the tests, started on a free local port and stopped after.

Uses the server binaries of the machine (Debian's ``postgresql`` package, installed by
``.ci/postgres`` when missing). PostgreSQL refuses to run as root, so under root the
server runs as the ``postgres`` system user, in a data directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

USER = "crmkit"
PASSWORD = "s3cret-Pa55word"  # noqa: S105 - a throwaway server's password, checked never to leak


def bin_dir() -> Path:
    """Return the directory of ``initdb`` and ``pg_ctl``; fail with how to install them."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if candidates:
        return Path(candidates[-1]).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: run `bash .ci/postgres` (installs Debian's "
        "postgresql package) or put pg_ctl on PATH"
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """A running server: its port, data directory and the process owner."""

    port: int
    data: Path
    bin: Path
    uid: int | None

    def uri(self, password: str = PASSWORD, database: str = "postgres") -> str:
        """The connection URI with the test user's password."""
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        # output goes to a file: the server started by pg_ctl would hold a pipe open
        with (self.data / "pg_ctl.out").open("ab") as out:
            self._run_to(out, *args)

    def _run_to(self, out: BinaryIO, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            user=self.uid,
            group=None if self.uid is None else pwd.getpwuid(self.uid).pw_gid,
            cwd=self.data.parent,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.data / "server.log")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data / "db"),
            "-l",
            log,
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        """Stop the server at once (connections are cut)."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data / "db"), "-m", "immediate", "-w", "stop")

    def psql(self, sql: str) -> str:
        """Run SQL through psql as the test user; return its output."""
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        out = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.uri()],
            input=sql,
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        return out.stdout


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    """Initialise a cluster in a temporary directory, start it, yield it, stop and remove it."""
    binaries = bin_dir()
    uid = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else None
    data = Path(tempfile.mkdtemp(prefix="crmkit-pg-"))
    try:
        if uid is not None:
            os.chown(data, uid, pwd.getpwuid(uid).pw_gid)
        (data / "pg_ctl.out").touch()
        (data / "server.log").touch()
        pwfile = data / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if uid is not None:
            for owned in ("pw", "pg_ctl.out", "server.log"):
                os.chown(data / owned, uid, -1)
        server = PgServer(free_port(), data, binaries, uid)
        server._run(
            "initdb",
            "-D",
            str(data / "db"),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        for attempt in range(3):
            try:
                server.start()
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise
                server.port = free_port()
                time.sleep(0.5)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)
