"""Find the database server the settings name, or start a project-local MariaDB.

`make demo` and `make test` call :func:`ensure_server` first: a newcomer without a database
server gets one whose data lives under `.local/mariadb/` (git-ignored), and the connection
settings for it are written to `.local/db.env`, which :class:`config.settings.Settings` reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from config.settings import LOCAL_DB_ENV, PROJECT_ROOT, Settings, load_settings
from db.connection import connection
from db.errors import DatabaseError, DatabaseUnavailable

log = logging.getLogger(__name__)

LOCAL_SERVER_DIR = PROJECT_ROOT / ".local" / "mariadb"
DEFAULT_LOCAL_PORT = 3307
_START_TIMEOUT_S = 60
_SERVER_BINARIES = ("mariadbd", "mysqld")
_INSTALL_DB_BINARIES = ("mariadb-install-db", "mysql_install_db")
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


class ServerSetupError(DatabaseError):
    """No server answers and a local one could not be started; the message says why."""


@dataclass(frozen=True)
class LocalServer:
    """Where a project-local server keeps its files."""

    base_dir: Path = LOCAL_SERVER_DIR

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "mariadbd.pid"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "mariadbd.log"

    @property
    def socket_path(self) -> Path:
        path = self.base_dir / "mariadbd.sock"
        # Unix socket paths are limited to ~107 bytes; deep checkouts fall back to /tmp.
        if len(str(path)) > 100:
            digest = hashlib.sha256(str(self.base_dir).encode()).hexdigest()[:12]
            return Path(tempfile.gettempdir()) / f"cdr-mariadb-{digest}.sock"
        return path


def ensure_server(
    settings: Settings, local: LocalServer | None = None, env_file: Path = LOCAL_DB_ENV
) -> Settings:
    """Return settings for a server that answers, starting a local MariaDB when none does.

    Raises:
        DatabaseError: the configured server answered but refused the credentials.
        ServerSetupError: no server answers and none could be started here.
    """
    try:
        _probe(settings)
        log.info("using the database server at %s:%s", settings.db_host, settings.db_port)
        return settings
    except DatabaseUnavailable as exc:
        log.info("%s; starting a project-local MariaDB", exc)
    local = local or LocalServer()
    port = _read_local_port(env_file) or DEFAULT_LOCAL_PORT
    if _port_in_use(port):
        port = _free_port()
    start_local_server(local, port)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text(
        "# Written by `python -m db server`: the project-local MariaDB.\n"
        f"DB_HOST=127.0.0.1\nDB_PORT={port}\nDB_USER=root\nDB_PASSWORD=\n",
        encoding="utf-8",
    )
    local_settings = load_settings(
        db_host="127.0.0.1", db_port=port, db_user="root", db_password=""
    )
    _probe(local_settings)
    return local_settings


def start_local_server(local: LocalServer, port: int) -> None:
    """Initialise (once) and start a MariaDB server on 127.0.0.1:``port``; wait until it answers."""
    server = _find_binary(_SERVER_BINARIES) or _install_server()
    local.base_dir.mkdir(parents=True, exist_ok=True)
    run_as = ["--user=root"] if os.geteuid() == 0 else []
    if not (local.data_dir / "mysql").is_dir():
        install_db = _find_binary(_INSTALL_DB_BINARIES)
        if install_db is None:
            raise ServerSetupError(f"{server} is installed but mariadb-install-db is not")
        log.info("initialising a MariaDB data directory in %s", local.data_dir)
        result = subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={local.data_dir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *run_as,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(local.data_dir, ignore_errors=True)
            raise ServerSetupError(f"mariadb-install-db failed: {result.stderr.strip()[-800:]}")
    log.info("starting MariaDB on 127.0.0.1:%s (log: %s)", port, local.log_file)
    with open(local.log_file, "ab") as log_handle:
        subprocess.Popen(
            [
                server,
                "--no-defaults",
                f"--datadir={local.data_dir}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--socket={local.socket_path}",
                f"--pid-file={local.pid_file}",
                "--local-infile=1",
                "--innodb-buffer-pool-size=256M",
                *run_as,
            ],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `make demo`, like any database server
        )
    probe = _local_settings(port)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            _probe(probe)
            return
        except DatabaseUnavailable:
            if time.monotonic() > deadline:
                tail = local.log_file.read_text(errors="replace")[-800:]
                raise ServerSetupError(
                    f"MariaDB did not answer on port {port} within {_START_TIMEOUT_S} s:\n{tail}"
                ) from None
            time.sleep(0.5)


def stop_local_server(local: LocalServer | None = None) -> bool:
    """Stop the project-local server if it runs; return whether one was stopped."""
    local = local or LocalServer()
    try:
        pid = int(local.pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        # mariadbd removes its pid file as the last step of a clean shutdown.
        if not local.pid_file.exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when we started it ourselves
            return True
        time.sleep(0.2)
    raise ServerSetupError(f"MariaDB (pid {pid}) did not stop within {_START_TIMEOUT_S} s")


def _local_settings(port: int) -> Settings:
    return load_settings(db_host="127.0.0.1", db_port=port, db_user="root", db_password="")


def _probe(settings: Settings) -> None:
    with connection(settings, with_database=False) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
        cursor.close()


def _find_binary(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name) or next(
            (str(Path(d) / name) for d in _SBIN if (Path(d) / name).is_file()), None
        )
        if found:
            return found
    return None


def _install_server() -> str:
    """Install Debian's mariadb-server when we are root on a Debian-like system."""
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        raise ServerSetupError(
            "no database server answers and MariaDB is not installed; install it "
            "(Debian/Ubuntu: sudo apt-get install mariadb-server) or set DB_HOST/DB_PORT/"
            "DB_USER/DB_PASSWORD to a server you have"
        )
    log.info("installing Debian's mariadb-server (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "mariadb-server"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServerSetupError(f"{' '.join(command)} failed: {result.stderr.strip()[-800:]}")
    found = _find_binary(_SERVER_BINARIES)
    if found is None:
        raise ServerSetupError("mariadb-server was installed but no mariadbd binary was found")
    return found


def _read_local_port(env_file: Path) -> int | None:
    try:
        for line in env_file.read_text(encoding="utf-8").splitlines():
            if line.startswith("DB_PORT="):
                return int(line.split("=", 1)[1])
    except (OSError, ValueError):
        return None
    return None


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
