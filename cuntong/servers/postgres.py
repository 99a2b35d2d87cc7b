"""A throwaway PostgreSQL cluster as a child process, for tests and the scale-out demo.

PostgreSQL refuses to run as root, so when we are root the cluster is created and run as
the ``postgres`` system user (the Debian package creates it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from common import procs


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class Postgres:
    port: int
    data_dir: Path
    host: str = "127.0.0.1"
    user: str = "postgres"
    #: Tests throw their database away, so they skip fsync; benchmarks measure it on.
    durable: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/postgres"

    def start(self, timeout: float = 30.0) -> Postgres:
        initdb = procs.find_binary("initdb")
        postgres = procs.find_binary("postgres")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for path in (self.data_dir, self.data_dir.parent):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                _as_postgres(
                    [initdb, "-D", str(self.data_dir), "-U", self.user, "-A", "trust", "-E", "UTF8"]
                ),
                check=True,
                capture_output=True,
            )
        argv = _as_postgres(
            [
                postgres,
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-h",
                self.host,
                "-k",
                str(self.data_dir),
                "-c",
                f"fsync={'on' if self.durable else 'off'}",
            ]
        )
        self.proc = procs.start(argv, self.data_dir.parent / "postgres.log")
        procs.wait_for_port(self.port, self.host, timeout, self.proc)
        # The port opens before recovery ends ("the database system is starting up").
        ready = procs.find_binary("pg_isready")
        deadline = time.monotonic() + timeout
        while subprocess.run(
            [ready, "-q", "-h", self.host, "-p", str(self.port)], check=False
        ).returncode:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise TimeoutError(f"PostgreSQL on port {self.port} did not become ready")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None

    def remove(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
