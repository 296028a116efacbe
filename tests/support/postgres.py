"""A real, throwaway PostgreSQL server for tests, and the ``job_store_url`` fixture that
runs a test once on SQLite and once on PostgreSQL.

The server is the Debian package's (``/usr/lib/postgresql/<version>/bin``): a fresh
cluster in a temporary directory, trust authentication, listening on 127.0.0.1 only at a
free port, its unix socket inside the directory, fsync off. PostgreSQL refuses to run as
root, so as root its programs run as the ``postgres`` system user (``runuser``). One
server serves a test session; each test gets a database of its own. Without the binaries
a test is skipped, except under CI, where that is a failure."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

PG_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"
READY_TIMEOUT = 30.0


def find_bin_dir() -> Path | None:
    """The newest installed version's bin directory, or None."""
    found = [d / "bin" for d in PG_ROOT.glob("*") if (d / "bin" / "initdb").is_file()]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1)
    return found[-1] if found else None


def require_bin_dir() -> Path:
    """The bin directory; skips the test without one, or fails it under CI."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail(
                f"PostgreSQL server not installed (no {PG_ROOT}/*/bin/initdb): CI must install "
                "the Debian package postgresql (.ci/run does)"
            )
        pytest.skip("PostgreSQL server not installed: apt-get install postgresql (Debian package)")
    return bin_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One cluster in its own temporary directory; ``start`` then always ``stop``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="hps-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # As root, the server's files belong to the postgres user and its programs run as it.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", SYSTEM_USER, "--"]

    def _command(self, program: str, *args: str) -> list[str]:
        return [*self.as_user, str(self.bin_dir / program), *args]

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            self._command(program, *args), cwd=self.root, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
        }
        args = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self._command("postgres", "-D", str(self.data), *args),
                cwd=self.root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Poll a connection until one succeeds, the server exits, or time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if self.process.poll() is not None:
                    raise RuntimeError(f"postgres exited ({self.process.returncode}):\n{self.log_tail()}") from exc
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not ready within {READY_TIMEOUT:g} s:\n{self.log_tail()}") from exc
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop at once (nothing to keep) and remove the directory; safe to call after a
        failed start."""
        try:
            if self.process is not None and self.process.poll() is None:
                subprocess.run(
                    self._command("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30"),
                    cwd=self.root, capture_output=True, timeout=60,
                )
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new, empty database's URL; dropped afterwards (its connections with it)."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started server, always stopped and removed afterwards."""
    server = PostgresServer(require_bin_dir())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (started only when a test asks)."""
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def job_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A job store URL to an empty store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url
