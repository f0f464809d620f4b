"""JSON read from files and requests that vaekit did not necessarily write: any bytes give one clear error.

`json.loads` raises more than JSONDecodeError on hostile input: UnicodeDecodeError on bytes that are not UTF-8,
RecursionError on arrays nested a few thousand deep (a 20 KB file), and it returns lists and strings where a
caller expects an object. `parse_json` and `read_json` turn all of these into the caller's error class with the
source named, so every JSON file vaekit reads (configs, a run's config.json, detector.json, standardizer.json,
vocab.json, headers of .safetensors and .vkz files) fails in one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import VaekitError


def parse_json(text: str | bytes, source: str, error: type[VaekitError] = VaekitError,
               expect: type | None = dict) -> Any:
    """The JSON value of `text`, which must be a `expect` (None: any value); `error` naming `source` otherwise."""
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise error(f"{source} is invalid: not JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None
    except RecursionError:
        raise error(f"{source} is invalid: JSON nested too deeply") from None
    if expect is not None and not isinstance(value, expect):
        raise error(f"{source} is invalid: expected a JSON {_kind(expect)}, got {_kind(type(value))}")
    return value


def read_json(path: str | Path, error: type[VaekitError] = VaekitError, expect: type | None = dict) -> Any:
    """`parse_json` of the file at `path`; a file that cannot be read is the same `error`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise error(f"cannot read {path} ({e.strerror or e})") from None
    return parse_json(data, str(path), error, expect)


def _kind(kind: type) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(kind, kind.__name__)


__all__ = ["parse_json", "read_json"]
