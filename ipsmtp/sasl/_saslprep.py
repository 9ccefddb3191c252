"""SASLprep (RFC 4013), the stringprep profile SCRAM applies to user names and passwords,
built on the stdlib `stringprep` tables."""

from __future__ import annotations

import stringprep
import unicodedata
from collections.abc import Callable

_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12,  # non-ASCII space
    stringprep.in_table_c21_c22,  # control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogates
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties, deprecated
    stringprep.in_table_c9,  # tagging characters
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """`text` prepared by SASLprep. Query strings (the default) may hold unassigned code
    points; stored strings may not. Raises ValueError, naming the position but not the
    character (it may be part of a password), when `text` holds a prohibited character or
    breaks the bidirectional rules."""
    mapped = []
    for char in text:
        if stringprep.in_table_b1(char):  # mapped to nothing (soft hyphen, joiners, ...)
            continue
        mapped.append(" " if stringprep.in_table_c12(char) else char)
    # RFC 3454 §4: normalization as of Unicode 3.2, like the stringprep tables themselves.
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", "".join(mapped))
    for position, char in enumerate(prepared):
        if any(table(char) for table in _PROHIBITED):
            raise ValueError(f"SASLprep: prohibited character at position {position}")
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise ValueError(f"SASLprep: unassigned code point at position {position}")
    if any(stringprep.in_table_d1(char) for char in prepared):
        if any(stringprep.in_table_d2(char) for char in prepared):
            raise ValueError("SASLprep: mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise ValueError("SASLprep: right-to-left text must start and end right-to-left")
    return prepared
