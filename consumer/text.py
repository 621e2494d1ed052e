"""Text that reaches terminals, logs and browsers: escaped, and an error message's first line.

A leaf module (the standard library only), so every layer can use it: the
event code's rejection reasons, the store's and the sources' error messages,
the API's error bodies, the console and the CLI.
"""

from __future__ import annotations

import unicodedata

_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def one_line(text: str, limit: int | None = 300) -> str:
    """The first non-blank line of a message (an exception's, a driver's), escaped, cut at `limit` characters.

    "" when there is none: callers say what stands in for it (`one_line(str(error)) or type(error).__name__`).
    """
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return safe_text(line if limit is None else line[:limit])
    return ""


def safe_text(text: str) -> str:
    """`text` with every character a terminal or browser could act on escaped as \\uXXXX."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        char if char == " " or unicodedata.category(char) not in _UNSAFE else _escape(char) for char in text
    )


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
