"""The event store's JSON format, written by orjson."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder

# datetimes and dataclasses go through the registered transcodings (`default`), as the
# library's encoder sends them; strings, numbers, lists and dicts orjson writes itself.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# Exact types both encoders write alike (datetimes by the same transcoding).
_ALIKE = frozenset({str, int, bool, type(None), datetime})


def _orjson_writes_alike(values: Iterable[Any]) -> bool:
    """False where orjson would not write what the library's encoder writes.

    orjson writes a UUID as a plain string (the library marks it as a UUID) and NaN and
    infinities as null (the library writes NaN and Infinity). Events store stream ids as
    strings and hold no floats, so this is only ever a safeguard.
    """
    for value in values:
        if type(value) in _ALIKE:
            continue
        if isinstance(value, dict):
            alike = _orjson_writes_alike(value.values())
        elif isinstance(value, list | tuple):
            alike = _orjson_writes_alike(value)
        elif isinstance(value, float):
            alike = math.isfinite(value)
        else:
            alike = not isinstance(value, UUID)
        if not alike:
            return False
    return True


class OrjsonTranscoder(JSONTranscoder):
    """The library's transcoder, encoding the same bytes faster.

    Decoding is the library's own, and anything orjson would write differently, or
    declines (integers beyond 64 bits, an unregistered type), is left to the library's
    encoder.
    """

    def encode(self, obj: Any) -> bytes:
        if _orjson_writes_alike((obj,)):
            try:
                return orjson.dumps(obj, default=self._encode_obj, option=_OPTIONS)
            except orjson.JSONEncodeError:
                pass
        return super().encode(obj)
