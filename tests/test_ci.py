"""The CI scripts: ``.ci/postgres`` servers of two runs on one machine do not clash."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy

REPOSITORY = Path(__file__).resolve().parents[1]
START = "source .ci/postgres start && echo \"$REFINER_NAS_POSTGRES_URL $REFINER_NAS_PGDATA\""


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("su") or not list(Path("/usr/lib/postgresql").glob("*/bin")),
                    reason="starts PostgreSQL servers as its postgres user: needs root and PostgreSQL (as in CI)")
def test_two_postgres_servers_started_at_once_both_work_and_both_stop() -> None:
    starts = [subprocess.Popen(["bash", "-c", START], cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
    servers = [process.communicate(timeout=120)[0].split() for process in starts]
    try:
        assert [process.returncode for process in starts] == [0, 0]
        (first_url, first_data), (second_url, second_data) = servers
        assert first_url != second_url and first_data != second_data  # each its own port and data folder
        for number, (url, _) in enumerate(servers):
            engine = sqlalchemy.create_engine(url)
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text(f"CREATE TABLE mark (n int); INSERT INTO mark VALUES ({number})"))
                assert connection.execute(sqlalchemy.text("SELECT n FROM mark")).scalars().all() == [number]
            engine.dispose()
    finally:
        for _, data in servers:
            subprocess.run([".ci/postgres", "stop"], cwd=REPOSITORY, check=True,
                           env={**os.environ, "REFINER_NAS_PGDATA": data})
    for url, data in servers:
        assert not Path(data).exists()
        with pytest.raises(sqlalchemy.exc.OperationalError, match="refused"):
            sqlalchemy.create_engine(url).connect()
