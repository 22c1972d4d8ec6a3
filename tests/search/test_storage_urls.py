"""Storage URLs that cannot be opened: each answered in one line that says what is wrong for that kind
of URL and how to fix it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from refiner_nas.search.storages import StorageError, open_storage


def refusal(url: str, run_dir: Path) -> str:
    with pytest.raises(StorageError) as error:
        open_storage(url, run_dir)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("url", "module", "package"), [
    ("mysql://user:secret@127.0.0.1/db", "MySQLdb", "mysqlclient"),
    ("mysql+pymysql://user:secret@127.0.0.1/db", "pymysql", "pymysql"),
])
def test_a_mysql_url_without_its_driver_names_that_driver(tmp_path: Path, monkeypatch, url: str, module: str,
                                                          package: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # not installed
    message = refusal(url, tmp_path)
    assert message.endswith(f"which is not installed; pip install {package}")
    assert "psycopg" not in message and "secret" not in message


def test_a_sqlite_file_in_a_missing_folder_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing/study.db"
    assert refusal(url, tmp_path) == (
        f"cannot open the SQLite database of {url}: (sqlite3.OperationalError) unable to open database file; check "
        "that its folder exists and that you may write there"
    )


def test_an_unknown_scheme_lists_the_supported_ones(tmp_path: Path) -> None:
    assert refusal("foo://host/db", tmp_path) == (
        "storage foo://host/db: unknown scheme foo://; use journal:///path/to/journal.log, sqlite:///path/to/study.db, "
        "postgresql://user:password@host/db or mysql://user:password@host/db"
    )


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_bad_storage_patience_is_refused_naming_the_variable(tmp_path: Path, monkeypatch, value: str) -> None:
    monkeypatch.setenv("REFINER_NAS_STORAGE_PATIENCE", value)
    with pytest.raises(ValueError, match=rf"^REFINER_NAS_STORAGE_PATIENCE='{value}' is not a positive number of "
                                         r"seconds; set it to e.g. 90 or unset it$"):
        open_storage("postgresql://user:secret@127.0.0.1:9/nowhere", tmp_path)
