"""The one reader of the text files users name: a missing or binary file is one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from refiner_nas.benchmarks.regress import COSTS_SCHEMA, read_baseline
from refiner_nas.refiner_space import ConfigError, ModelConfig
from refiner_nas.refiner_space.files import read_text_file


class CallerError(ValueError):
    pass


def test_text_comes_back_and_a_binary_or_missing_file_raises_the_callers_error(tmp_path: Path) -> None:
    text = tmp_path / "space.yaml"
    text.write_text("dimensions: {}\n")
    assert read_text_file(text, "search space") == "dimensions: {}\n"
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"depth: 2\n\xff\xfe")
    with pytest.raises(CallerError, match=r"b.yaml: not a text \(UTF-8\) file: byte 9 is 0xff; give a YAML thing$"):
        read_text_file(binary, "thing", error=CallerError)
    with pytest.raises(CallerError, match=r"gone.yaml: cannot read thing \(No such file or directory\)$"):
        read_text_file(tmp_path / "gone.yaml", "thing", error=CallerError)
    with pytest.raises(CallerError, match=r": cannot read thing \(Is a directory\)$"):
        read_text_file(tmp_path, "thing", error=CallerError)


def test_every_reader_goes_through_it(tmp_path: Path) -> None:
    png = tmp_path / "x.json"
    png.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(ConfigError, match=r"x.json: not a text \(UTF-8\) file: byte 0 is 0x89; give a YAML model"):
        ModelConfig.from_yaml(png)
    with pytest.raises(ValueError, match=r"x.json: not a text \(UTF-8\) file: byte 0 is 0x89; give a JSON baseline"):
        read_baseline(png, COSTS_SCHEMA)
