"""A throwaway PostgreSQL server for tests (no tests here): initdb + pg_ctl in a temp
folder, on a free loopback port, torn down after.

Why real PostgreSQL: the replica test checks locks and leases across processes, which
SQLite cannot stand in for. The server binaries come from Debian's `postgresql` package
(`.ci/run` installs it). PostgreSQL refuses to run as root, so as root every server
command runs as the `postgres` user (`runuser`), in a folder that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.admin import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin/initdb"
SERVER_USER = "postgres"  # the account Debian's package creates
DATABASE = "stance_test"
START_TIMEOUT_S = 60


def find_bin_dir() -> Path | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(glob.glob(BIN_GLOB), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


@dataclass
class TempPostgres:
    bin_dir: Path
    root: Path
    port: int

    @property
    def url(self) -> str:
        return self.database_url(DATABASE)

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://{self._user}@127.0.0.1:{self.port}/{name}"

    def new_database(self, name: str) -> str:
        """An empty database on this server (one per test: no tables left over)."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self._user, name)
        return self.database_url(name)

    @property
    def _user(self) -> str:
        return SERVER_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> TempPostgres:
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            for path in (self.root, sock):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", self._user, "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self._user, DATABASE)
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 4000) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-chars:] if log.is_file() else ""


def start_postgres(bin_dir: Path) -> TempPostgres:
    """A running server with an empty `stance_test` database; the caller stops it."""
    root = Path(tempfile.mkdtemp(prefix="stance-pg-"))  # /tmp: reachable by the postgres user
    os.chmod(root, 0o755)
    server = TempPostgres(bin_dir, root, free_port())
    try:
        return server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
