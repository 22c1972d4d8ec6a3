"""Stopping and starting the throw-away PostgreSQL server of ``.ci/postgres``, for fault runs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Literal


def postgres_server(pgdata: str, url: str, action: Literal["stop", "start"]) -> None:
    """Stop (fast shutdown: connections are cut) or start the server whose data folder is ``pgdata`` and
    which listens on ``url``'s port; runs ``pg_ctl`` as the postgres user and waits until it is done."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
    port = url.rsplit(":", 1)[1].split("/", 1)[0]
    command = (f"{binaries}/pg_ctl -D {pgdata} -m fast -w stop" if action == "stop" else
               f"{binaries}/pg_ctl -D {pgdata} -l {pgdata}/server.log -w "
               f"-o '-c listen_addresses=127.0.0.1 -p {port} -k /tmp' start")
    subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True)
