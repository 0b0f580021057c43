"""A local PostgreSQL cluster that the project starts and stops itself.

The server binaries come from Debian's ``postgresql`` package, installed with apt-get when they
are missing (as root). The cluster lives in ``run/postgres`` (git-ignored), listens on
127.0.0.1:25432 only, trusts loopback connections and owns a database ``whoop`` for the role
``whoop``. PostgreSQL refuses to run as root, so when we are root the server runs as the
``postgres`` system user that the Debian package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.paths import run_dir

__all__ = ["LOCAL_DATABASE_URL", "LocalPostgres", "PostgresLaunchError", "find_bindir"]

PORT = 25432  # below Linux's ephemeral range (32768-60999), like every fixed port of ours
ROLE = "whoop"
DATABASE = "whoop"
LOCAL_DATABASE_URL = f"postgresql://{ROLE}@127.0.0.1:{PORT}/{DATABASE}"
SERVER_SETTINGS = (
    "listen_addresses=127.0.0.1",
    f"port={PORT}",
    "max_connections=200",
    "shared_buffers=256MB",
    "logging_collector=off",
)


class PostgresLaunchError(RuntimeError):
    """The local cluster could not be installed, created or started."""


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL server bin folder, or the one holding ``initdb`` on PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name),
        reverse=True,
    )
    if candidates:
        return candidates[0].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _install_server() -> Path:
    if os.geteuid() != 0:
        raise PostgresLaunchError(
            "PostgreSQL server binaries not found. Install them (sudo apt-get install -y postgresql) "
            "or set DATABASE_URL to a server you run."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise PostgresLaunchError(
                f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
    bindir = find_bindir()
    if bindir is None:
        raise PostgresLaunchError(
            "apt-get installed postgresql but no initdb was found under /usr/lib/postgresql"
        )
    return bindir


@dataclass(frozen=True)
class LocalPostgres:
    """The project's own PostgreSQL cluster under the run folder."""

    home: Path

    @classmethod
    def default(cls) -> LocalPostgres:
        return cls(run_dir() / "postgres")

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    def _as_owner(self, argv: Sequence[str]) -> list[str]:
        """Run as the ``postgres`` system user when we are root (the server refuses root)."""
        if os.geteuid() != 0:
            return list(argv)
        return ["runuser", "-u", "postgres", "--", *argv]

    def _run(self, argv: Sequence[str]) -> str:
        result = subprocess.run(self._as_owner(argv), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresLaunchError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _give_to_owner(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        owner = pwd.getpwnam("postgres")
        for path in [self.home, *self.home.rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        # the server user must be able to reach its data folder through our checkout
        for parent in self.home.parents:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)

    def running(self) -> bool:
        """True when this cluster runs and accepts connections."""
        bindir = find_bindir()
        return bindir is not None and (self.data / "postmaster.pid").exists() and self._accepting(bindir)

    @staticmethod
    def _accepting(bindir: Path) -> bool:
        argv = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(PORT)]
        return subprocess.run(argv, check=False).returncode == 0

    def up(self, timeout_s: float = 60.0) -> str:
        """Install if needed, create the cluster once, start it, wait until it accepts connections."""
        bindir = find_bindir() or _install_server()
        if self._accepting(bindir):  # ours, or another checkout's cluster on the same port
            self._ensure_database(bindir)
            return LOCAL_DATABASE_URL
        self._give_to_owner()
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    ROLE,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
        if not self.running():
            options = " ".join(f"-c {setting}" for setting in SERVER_SETTINGS) + f" -k {self.home}"
            self._run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(timeout_s)),
                    "start",
                ]
            )
        self._wait_ready(bindir, timeout_s)
        self._ensure_database(bindir)
        return LOCAL_DATABASE_URL

    def _wait_ready(self, bindir: Path, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._accepting(bindir):
            if time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
                raise PostgresLaunchError(f"PostgreSQL not ready after {timeout_s:.0f}s:\n{tail}")
            time.sleep(0.2)

    def _ensure_database(self, bindir: Path) -> None:
        psql = [
            str(bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(PORT),
            "-U",
            ROLE,
            "-d",
            "postgres",
            "-tA",
            "-c",
        ]
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],  # noqa: S608 - constant name
            capture_output=True,
            text=True,
            check=True,
        )
        if exists.stdout.strip() != "1":
            subprocess.run([*psql, f"CREATE DATABASE {DATABASE}"], capture_output=True, check=True)

    def down(self) -> None:
        """Stop the cluster (fast shutdown); a no-op when it is not running."""
        bindir = find_bindir()
        if bindir is None or not (self.data / "postmaster.pid").exists():
            return
        self._run([str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
