"""Finding a server, or starting a project-local MariaDB from the installed binary."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config.settings import Settings
from db.migrate import init_database
from db.server import LocalServer, ensure_server, stop_local_server


def test_uses_the_configured_server_when_it_answers(
    base_settings: Settings, tmp_path: Path
) -> None:
    env_file = tmp_path / "db.env"
    found = ensure_server(base_settings, LocalServer(tmp_path / "mariadb"), env_file)
    assert found is base_settings
    assert not env_file.exists() and not (tmp_path / "mariadb").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("mariadbd") is None and not Path("/usr/sbin/mariadbd").exists(),
    reason="needs the MariaDB server binary",
)
def test_starts_a_local_server_when_none_answers(base_settings: Settings, tmp_path: Path) -> None:
    unreachable = base_settings.model_copy(update={"db_port": 1, "db_name": "cdrtest_local"})
    local = LocalServer(tmp_path / "mariadb")
    env_file = tmp_path / "db.env"
    try:
        found = ensure_server(unreachable, local, env_file)
        assert found.db_port != base_settings.db_port
        assert f"DB_PORT={found.db_port}" in env_file.read_text()
        assert (local.data_dir / "mysql").is_dir()
        assert len(init_database(found.model_copy(update={"db_name": "cdrtest_local"}))) >= 3
    finally:
        stopped = stop_local_server(local)
    assert stopped and not local.pid_file.exists()
