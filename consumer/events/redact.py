"""Credentials in query strings, replaced by `[redacted]` wherever they appear.

Canvas's `metadata.url` carries the request's query string, `access_token=...`
included, and any URL an event holds may carry a signed link's signature.
Before a payload reaches the quarantine, and before a URL-valued field
becomes a row, the value of every credential-bearing query parameter is
replaced by `[redacted]`; everything else is left byte for byte.

Which parameters (`is_credential_name`): after decoding the name (percent-
encoding, repeatedly, and JSON `\\uXXXX` escapes), lower-cased, `-` read as
`_`, and for a nested name such as `user[password]` its last part: the names
in `CREDENTIAL_NAMES`, and any name ending in one of `CREDENTIAL_SUFFIXES`
(`access_token`, `refresh_token`, `X-Amz-Security-Token`, `client_secret`,
`X-Amz-Signature`, `oauth_signature`, Canvas's file link `verifier`, ...).
An empty value is left alone.

Where: a parameter starts after `?`, `&`, `#`, `;` (so `&amp;` too), a quote,
or the start of the text, and its `=` may be written `=`, `\\u003d` (JSON) or
`%3D` (a URL inside another URL's query, encoded once or more: `%253D`). The
value runs to the end of the parameter: `&` or `#` (for an encoded URL also
its own encoded `%26`, `%23`), a quote, `<`, `>`, a space or control
character, or a backslash escape that is not `\\/` or a `\\uXXXX` of a
character a URL value may hold. Backslashes are read in runs, so the same
text is found whatever the level of JSON escaping: a URL in a JSON string
(`https:\\/\\/...`, `\\u0026`), or in a JSON document that is itself a string
(an SNS notification's `Message`: `\\\\\\/`, `\\"`). A `%` is read as written (no
JSON encoder writes it `\\u0025`).

What this guarantees (tests/events/test_redact.py checks each with hypothesis):
- the value is gone, whatever it is and however the name is encoded;
- the replacement never cuts an escape and never leaves the JSON string that
  held the value, so a JSON text stays JSON of the same shape, at any level
  of nesting (an SNS Message); and when its strings hold no literal
  backslash (a URL holds none), it decodes to the same document with
  `redact_text` applied to each string, whichever way it was escaped. And
  `parse_event` gives a rejected input the outcome of its redacted form, so
  a quarantined payload, retried, gives the outcome the original got, even
  when that depended on the credential's bytes (a lone surrogate, bytes that
  are not UTF-8);
- text without a credential parameter is returned unchanged, byte for byte;
- redacting twice is redacting once.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import AnyStr
from urllib.parse import unquote

REDACTED = "[redacted]"

CREDENTIAL_NAMES = frozenset({
    "key", "api_key", "apikey", "access_key", "secret_key", "private_key", "sig", "code", "passwd", "pwd",
    "jwt", "assertion", "client_assertion", "oauth_verifier", "code_verifier", "x_amz_credential",
    "auth", "authorization",
})
# "verifier": Canvas's file links (`/files/1/download?verifier=...`, `sf_verifier=...`) let whoever holds them read the file.
CREDENTIAL_SUFFIXES = ("token", "secret", "password", "signature", "verifier")

# A run of backslashes is read whole, from its start (never from its middle, and never given back):
# that is what keeps escapes intact, and the scan linear however long the run.
_BACKSLASHES = r"(?<!\\)\\++"
_SEPARATOR = rf"""(?:[?&#;"']|%(?:25)*+(?:3[fFbB]|2[36])|{_BACKSLASHES}u00(?:3[fFbB]|2[2367]))"""
_EQUALS = rf"(?P<eq>=|%(?:25)*+3[dD]|{_BACKSLASHES}u003[dD])"
# Name characters: what a parameter name is made of, or a percent or JSON escape of one that is not a separator or `=`.
_NAME = (
    r"(?P<name>(?:[A-Za-z0-9_.~+\-\[\]]"
    r"|(?!%(?:25)*+(?:3[dDfFbB]|2[36]))%[0-9A-Fa-f]{2}"
    rf"|(?<!\\)(?!\\++u00(?:3[dDfFbB]|2[2367])){_BACKSLASHES}u[0-9A-Fa-f]{{4}})+)"
)
# The leading lookaheads only make the scan fast (a first character to look for; a name that ends in
# something that may be an `=`): they match nothing the rest would not.
_PARAMETER = r"""(?=[?&#;"'%\\])""" + _SEPARATOR + r"(?=[A-Za-z0-9_.~+\-\[\]]*+[=%\\])" + _NAME + _EQUALS
_PARAMETER_AT_START = _NAME + _EQUALS
# A value character: anything but a quote, <, >, &, #, a backslash, a space or control character;
# or an escaped slash; or a JSON escape of a character that is none of those.
_VALUE_UNIT = (
    r"""(?:[^\x00-\x20"<>&#\\\x7f]"""
    rf"|{_BACKSLASHES}/"
    rf"|(?<!\\)(?!\\++u00(?:[01][0-9a-fA-F]|2[0236]|3[cCeE]|5[cC]|7[fF])){_BACKSLASHES}u[0-9A-Fa-f]{{4}})"
)
_MAX_LEVEL = 8  # URLs encoded inside URLs this many times at most are told apart; deeper ones end at the outer `&`


def _compile(source: str, text_type: type) -> re.Pattern:
    return re.compile(source if text_type is str else source.encode("ascii"))


@lru_cache(maxsize=4)
def _parameter(text_type: type, at_start: bool = False) -> re.Pattern:
    return _compile(_PARAMETER_AT_START if at_start else _PARAMETER, text_type)


@lru_cache(maxsize=2 * (_MAX_LEVEL + 1))
def _value(text_type: type, level: int) -> re.Pattern:
    """The value of a parameter whose `=` was percent-encoded `level` times: it also ends at its own encoded & and #."""
    if level == 0:
        return _compile(f"{_VALUE_UNIT}*", text_type)
    own_ends = f"(?!%(?:25){{0,{level - 1}}}2[36])"
    return _compile(f"(?:{own_ends}{_VALUE_UNIT})*", text_type)


_JSON_ESCAPE = re.compile(r"\\+u([0-9A-Fa-f]{4})")
_NAME_PART = re.compile(r"[^\[\]]+")
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.~+-[]")


_LONGEST_CACHED_NAME = 256  # the cache keeps its keys: a flood of distinct huge names must not stay in memory


def is_credential_name(name: str) -> bool:
    """Is `name` (as written in a query string, escapes included) a credential-bearing parameter?"""
    return _is_credential_name_cached(name) if len(name) <= _LONGEST_CACHED_NAME else _is_credential_name(name)


@lru_cache(maxsize=4096)
def _is_credential_name_cached(name: str) -> bool:
    return _is_credential_name(name)


def _is_credential_name(name: str) -> bool:
    decoded = _decoded_name(name)
    if decoded is None:
        return False
    parts = _NAME_PART.findall(decoded)
    if not parts:
        return False
    last = parts[-1].replace("-", "_")
    return last in CREDENTIAL_NAMES or last.endswith(CREDENTIAL_SUFFIXES)


def _decoded_name(name: str) -> str | None:
    """The name with its percent and JSON escapes undone (repeatedly), lower-cased; None if it is not a name."""
    for _ in range(2 * _MAX_LEVEL):
        decoded = unquote(_JSON_ESCAPE.sub(lambda match: chr(int(match[1], 16)), name), errors="replace")
        if decoded == name:
            break
        name = decoded
    if not name.isascii():  # before lower(): the Kelvin sign lower-cases to "k"
        return None
    name = name.lower()
    return name if _NAME_CHARACTERS.issuperset(name) else None


def _level(equals: AnyStr) -> int:
    """How many times the `=` was percent-encoded (`=` and `\\u003d`: 0; `%3D`: 1; `%253D`: 2)."""
    if equals[:1] not in ("%", b"%"):
        return 0
    return min(1 + (len(equals) - 3) // 2, _MAX_LEVEL)


def _redact(text: AnyStr) -> AnyStr:
    text_type = type(text)
    parameter = _parameter(text_type)
    marker = REDACTED if text_type is str else REDACTED.encode("ascii")
    pieces: list = []
    kept = position = 0
    found = _parameter(text_type, at_start=True).match(text) or parameter.search(text)
    while found is not None:
        position = found.end()  # without a credential, the next parameter may start in this one's value (`?a=x;token=...`)
        name = found["name"]
        if is_credential_name(name if text_type is str else name.decode("ascii")):
            value_end = _value(text_type, _level(found["eq"])).match(text, position).end()
            if value_end > position:  # an empty value has nothing to hide
                pieces += [text[kept:position], marker]
                kept = position = value_end
        found = parameter.search(text, position)
    if not pieces:
        return text
    pieces.append(text[kept:])
    return text[:0].join(pieces)


# What every credential name holds, however it is separated (`X-Amz-Credential`, `x_amz_credential`);
# a needle holding another is left out.
_ALL_NEEDLES = {name.rsplit("_", 1)[-1] for name in CREDENTIAL_NAMES} | set(CREDENTIAL_SUFFIXES)
_NEEDLES = tuple(sorted(n for n in _ALL_NEEDLES if not any(o != n and o in n for o in _ALL_NEEDLES)))
_BYTE_NEEDLES = tuple(needle.encode("ascii") for needle in _NEEDLES)


def _may_hold_credential(text: AnyStr) -> bool:
    """A fast test: can `text` hold a credential parameter at all?

    Not without an `=`; and with an `=` but no escape (`%`, a backslash), only
    if a credential name is spelled out in it.
    """
    if isinstance(text, str):
        escaped, has_equals, needles = "%" in text or "\\" in text, "=" in text, _NEEDLES
    else:
        escaped, has_equals, needles = b"%" in text or b"\\" in text, b"=" in text, _BYTE_NEEDLES
    if escaped:
        return True
    if not has_equals:
        return False
    lowered = text.lower()
    for needle in needles:
        if needle in lowered:
            return True
    return False


def redact_payload(payload: bytes) -> bytes:
    """The payload with every credential parameter's value replaced by `[redacted]` (bytes need not be UTF-8)."""
    return _redact(payload) if _may_hold_credential(payload) else payload


def redact_text(text: str) -> str:
    """The same for a string: a URL field's value, a rejection reason."""
    return _redact(text) if _may_hold_credential(text) else text
