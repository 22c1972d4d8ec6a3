"""Reading the text files a user names (search spaces, model configurations, exports, baselines): the one
place that turns a missing, unreadable or binary file into a line naming the file and what was expected."""

from __future__ import annotations

from pathlib import Path


def read_text_file(path: Path, what: str, *, expected: str | None = None,
                   error: type[Exception] = ValueError) -> str:
    """The UTF-8 text of ``path``, a ``what`` (e.g. ``"search space"``) the user gave.

    Raises:
        error: (the caller's error class) a file that is missing or unreadable, or not text (a PNG given as
            a YAML file), naming the file, the first byte that is not UTF-8 and ``expected`` (default:
            ``a YAML <what>``).
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as problem:
        byte = problem.object[problem.start]
        wanted = expected or f"a YAML {what}"
        raise error(f"{path}: not a text (UTF-8) file: byte {problem.start} is 0x{byte:02x}; give {wanted}") from None
    except OSError as problem:
        raise error(f"{path}: cannot read {what} ({problem.strerror or problem})") from None
