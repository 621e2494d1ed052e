"""Credentials in query strings are redacted wherever a payload or a URL carries them (events/redact.py).

The properties: the value is gone whatever it is and however the parameter
name is encoded; the redaction stays inside the JSON string that held it,
so a JSON document decodes to itself with its strings redacted, at any level
of nesting (an SNS Message); text without a credential parameter is
unchanged byte for byte; redacting twice is redacting once.
"""

from __future__ import annotations

import json
import random
from urllib.parse import quote

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from consumer.core import Rejected, Tracked
from consumer.events.parse import fast_outcome, interpret, parse_event
from consumer.events.redact import REDACTED, is_credential_name, redact_payload, redact_text
from tests.factory import SAMPLE_EVENTS, encode, progress_event, sample, sns_notification
from tests.helpers import budget

CREDENTIALS = [
    "access_token", "ACCESS_TOKEN", "token", "refresh_token", "id_token", "oauth_token", "session_token", "authenticity_token",
    "api_key", "apikey", "key", "access_key", "client_secret", "secret", "password", "passwd", "pwd", "signature", "sig",
    "oauth_signature", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "code", "jwt", "client_assertion",
    "user[password]", "pseudonym_session[password]", "auth", "authorization",
    "verifier", "sf_verifier",  # Canvas file links: /files/1/download?verifier=... reads the file without logging in
]
NOT_CREDENTIALS = [
    "include[]", "per_page", "page", "user_id", "course_id", "keyword", "tokens", "monkey", "sort", "order", "state", "url",
    "password_hint[]x", "search_term", "module_item_id", "codename", "token_count", "a", "verified", "verifiers",
]
# Characters a query value may hold unencoded (RFC 3986 query minus & and #); anything else is percent-encoded.
VALUE_SAFE = "-._~!$'()*+,;=:@/?"


@pytest.mark.parametrize("name", CREDENTIALS)
def test_credential_names(name):
    assert is_credential_name(name)


@pytest.mark.parametrize("name", NOT_CREDENTIALS)
def test_other_names(name):
    assert not is_credential_name(name)


def test_a_name_is_read_the_same_escaped_or_not():
    # KELVIN SIGN + "ey" lower-cases to "key": neither spelling is a parameter name.
    for text in ("https://c/x?\u212aey=1", "https://c/x?%E2%84%AAey=1"):
        assert redact_text(text) == text
        for style in range(STYLES):
            assert redact_payload(_serialise({"u": text}, style)) == _serialise({"u": text}, style)


def test_the_documented_cases():
    cases = {
        "https://c.example.edu/api/v1/courses/565/modules?include%5B%5D=items&per_page=99&access_token=7~Ab12":
            "https://c.example.edu/api/v1/courses/565/modules?include%5B%5D=items&per_page=99&access_token=[redacted]",
        "https://c/x?access%5Ftoken=T&a=1": "https://c/x?access%5Ftoken=[redacted]&a=1",
        "https://c/x?a=1;token=T#top": "https://c/x?a=1;token=[redacted]#top",
        "https://c/cb#access_token=T&state=1": "https://c/cb#access_token=[redacted]&state=1",
        "https://c/x?next=https%3A%2F%2Fd%2Fp%3Faccess_token%3DT%26x%3D1&y=2":
            "https://c/x?next=https%3A%2F%2Fd%2Fp%3Faccess_token%3D[redacted]%26x%3D1&y=2",
        "https://s3/b/k?X-Amz-Credential=AKIA%2F2024&X-Amz-Signature=ab/c+==&X-Amz-Security-Token=Fw//ZX":
            "https://s3/b/k?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&X-Amz-Security-Token=[redacted]",
        "https://c/login?pseudonym_session[password]=hunter2&token=": "https://c/login?pseudonym_session[password]=[redacted]&token=",
        "grant_type=refresh_token&client_secret=S&refresh_token=R": "grant_type=refresh_token&client_secret=[redacted]&refresh_token=[redacted]",
        "https://c/a?x=&amp;token=T": "https://c/a?x=&amp;token=[redacted]",
    }
    for given_text, expected in cases.items():
        assert redact_text(given_text) == expected
        assert redact_payload(given_text.encode()) == expected.encode()


def _percent_encoded(draw, name: str) -> str:
    """`name` with some characters percent-encoded (either case of hex), and perhaps the whole encoded again."""
    out = []
    for char in name:
        if draw(st.booleans()):
            code = f"{ord(char):02X}"
            out.append("%" + (code if draw(st.booleans()) else code.lower()))
        else:
            out.append(char)
    encoded = "".join(out)
    return quote(encoded, safe="") if draw(st.integers(0, 3)) == 0 else encoded


@st.composite
def credential_names(draw) -> str:
    name = draw(st.sampled_from(CREDENTIALS))
    name = "".join(c.upper() if draw(st.booleans()) else c for c in name) if draw(st.booleans()) else name
    return _percent_encoded(draw, name)


@st.composite
def token_values(draw) -> str:
    """A token as it stands in a URL: arbitrary text, percent-encoded where a URL needs it."""
    return quote(draw(st.text(min_size=1, max_size=40)), safe=VALUE_SAFE)


other_parameters = st.lists(
    st.tuples(st.sampled_from(NOT_CREDENTIALS), st.text(alphabet="abcXYZ019-_.~%2F", max_size=6)), max_size=3
).map(lambda pairs: "&".join(f"{quote(k, safe='[]')}={v}" for k, v in pairs))


def _url(name: str, token: str, before: str, after: str, anchor: str) -> str:
    query = "&".join(part for part in (before, f"{name}={token}", after) if part)
    return f"https://canvas.example.edu/api/v1/courses/565/modules{anchor}{query}"


STYLES = 8


def _serialise(document, style: int) -> bytes:
    """One of the ways the same JSON reaches us: plain, ASCII-escaped, slashes and & escaped (Rails), every
    character escaped but letters, digits and `%` (no encoder escapes `%`; redact.py does not read `\\u0025`);
    or one of these inside an SNS notification (styles 4-7)."""
    if style == 0:
        return json.dumps(document, ensure_ascii=False).encode()
    if style == 1:
        return json.dumps(document).encode()
    if style == 2:
        return json.dumps(document).replace("/", "\\/").replace("&", "\\u0026").encode()
    if style == 3:
        return _escape_all(document).encode()
    inner = _serialise(document, style - 4).decode()
    return json.dumps(sns_notification(inner)).replace("/", "\\/").encode()


def _escape_all(value) -> str:
    if isinstance(value, str):
        units = value.encode("utf-16-be", "surrogatepass")
        codes = (int.from_bytes(units[n : n + 2], "big") for n in range(0, len(units), 2))
        return '"' + "".join(chr(c) if chr(c).isascii() and (chr(c).isalnum() or chr(c) == "%") else f"\\u{c:04x}" for c in codes) + '"'
    if isinstance(value, list):
        return "[" + ",".join(_escape_all(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_escape_all(key)}:{_escape_all(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def _event_with_url(url: str) -> dict:
    event = sample("course_completed")
    event["metadata"]["url"] = url
    return event


@given(
    name=credential_names(), token=token_values(), other=token_values(), before=other_parameters, after=other_parameters,
    anchor=st.sampled_from(["?", "#", "?a=1#"]), style=st.integers(0, STYLES - 1),
)
@budget(300)
@example(name="access%5Ftoken", token="1~abc", other="x", before="", after="", anchor="?", style=6)
def test_the_token_is_gone_whatever_it_is_and_however_the_name_is_encoded(name, token, other, before, after, anchor, style):
    def redacted(value: str) -> bytes:
        return redact_payload(_serialise(_event_with_url(_url(name, value, before, after, anchor)), style))

    result = redacted(token)
    assert REDACTED.encode() in result
    assert result == redacted(other)  # nothing of the token is left: the result does not depend on it
    marked = "TOKEN_" + token
    assert b"TOKEN_" not in redacted(marked)
    document = orjson.loads(result)
    while "Message" in document:
        document = orjson.loads(document["Message"])
    assert document["metadata"]["url"] == redact_text(_url(name, token, before, after, anchor))


# JSON documents whose strings are drawn from URL-ish pieces, credentials included. The exact property
# holds for strings without a literal backslash (a URL holds none); with them, the shape property below.
_PIECES = [
    "https://c.example.edu/x", "?", "&", "#", ";", "=", "%3D", "%3F", "%26", "%253D", "access_token", "token", "key", "a",
    "per_page", "%5F", "/", "\"", "'", " ", "\n", "é", "\u2028", "😀", "[", "]", "99", "x~y",
    "\u212aey",  # KELVIN SIGN + "ey": lower-cases to "key", but is no parameter name
]
_BACKSLASH_PIECES = ["\\", "\\u0026", "\\u003d", "\\/", "\\\\"]


def _documents(pieces: list[str]):
    strings = st.lists(st.sampled_from(pieces), max_size=12).map("".join) | st.text(alphabet=st.characters(blacklist_characters="\\", blacklist_categories=("Cs",)), max_size=12)
    return st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | strings,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(alphabet="abcdef_", max_size=6), children, max_size=4),
        max_leaves=12,
    )


url_strings = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)


def _strings_redacted(value):
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_strings_redacted(item) for item in value]
    if isinstance(value, dict):
        return {redact_text(key): _strings_redacted(item) for key, item in value.items()}
    return value


def _decoded(result: bytes):
    decoded = orjson.loads(result)
    while "Message" in decoded:
        decoded = orjson.loads(decoded["Message"])
    return decoded


@given(document=_documents(_PIECES), style=st.integers(0, STYLES - 1))
@budget(400)
def test_a_json_text_decodes_to_the_same_document_with_its_strings_redacted(document, style):
    assert _decoded(redact_payload(_serialise({"d": document}, style))) == {"d": _strings_redacted(document)}


def _same_shape(original, redacted) -> bool:
    """The same JSON but for strings, each of which is unchanged or redacted."""
    if isinstance(original, str):
        return isinstance(redacted, str) and (redacted == original or REDACTED in redacted)
    if isinstance(original, list):
        return isinstance(redacted, list) and len(original) == len(redacted) and all(map(_same_shape, original, redacted))
    if isinstance(original, dict):
        return (isinstance(redacted, dict) and len(original) == len(redacted)
                and all(_same_shape(a, b) for a, b in zip(original.items(), redacted.items(), strict=True)))
    if isinstance(original, tuple):  # a dict item
        return _same_shape(original[0], redacted[0]) and _same_shape(original[1], redacted[1])
    return original == redacted and type(original) is type(redacted)


@given(document=_documents(_PIECES + _BACKSLASH_PIECES), style=st.integers(0, STYLES - 1))
@budget(400)
def test_backslashes_anywhere_never_break_the_json(document, style):
    # A literal backslash next to a value may end it elsewhere than in the decoded string, but the text
    # stays JSON of the same shape: the redaction never cuts an escape and never leaves its string.
    assert _same_shape({"d": document}, _decoded(redact_payload(_serialise({"d": document}, style))))


stress_text = st.text(alphabet="?&#;=%253DdFfu0\\\"'/ab_tokeny[]x \n", max_size=60)


@given(text=stress_text | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
@budget(500)
def test_redacting_twice_is_redacting_once(text):
    once = redact_text(text)
    assert redact_text(once) == once
    raw = text.encode("utf-8", "surrogatepass")
    assert redact_payload(redact_payload(raw)) == redact_payload(raw)
    assert redact_payload(raw) == redact_text(text).encode("utf-8", "surrogatepass")  # bytes and text agree


@given(text=stress_text | url_strings | st.builds(
    _url, st.sampled_from(CREDENTIALS) | credential_names(), st.text(alphabet="abcXYZ019-._~", min_size=1, max_size=8),
    st.just(""), st.just("page=2"), st.sampled_from(["?", "#", ";"]),
).flatmap(lambda u: st.sampled_from([u, u.replace("_", "-"), u.upper()])))
@budget(500)
def test_the_fast_first_test_never_lets_a_credential_through(text):
    from consumer.events.redact import _may_hold_credential, _redact

    if _redact(text) != text:
        assert _may_hold_credential(text) and _may_hold_credential(text.encode())


@given(data=st.binary(max_size=200))
@budget(300)
def test_bytes_without_an_equals_sign_in_any_spelling_are_unchanged(data):
    if b"=" in data or b"3d" in data.lower():
        data = data.replace(b"=", b"-").replace(b"3d", b"3e").replace(b"3D", b"3E")
    assert redact_payload(data) == data


@given(before=other_parameters, after=other_parameters, style=st.integers(0, STYLES - 1))
@budget(200)
def test_payloads_without_credential_parameters_are_unchanged_byte_for_byte(before, after, style):
    url = f"https://canvas.example.edu/courses/565/modules?{before}&{after}"
    payload = _serialise(_event_with_url(url), style)
    assert redact_payload(payload) == payload


def test_the_sample_events_are_unchanged():
    for path in sorted(SAMPLE_EVENTS.iterdir()):
        data = path.read_bytes()
        assert redact_payload(data) == data, path


def test_redacting_distinct_huge_names_keeps_no_memory():
    # The decision for each name is cached; a cache keeping every distinct 50 KB name it met would hold a
    # flood of them (4,096 names of 250 KB: 1 GB) for the life of the worker.
    import gc
    import tracemalloc

    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(100):
            redact_payload(b'{"u": "https://c/x?' + b"n%d" % n + b"a" * 50_000 + b'=1%20"}')
        gc.collect()
        assert tracemalloc.get_traced_memory()[0] - before < 1_000_000
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("size", [200_000])
def test_time_is_linear_in_the_size_of_hostile_text(size):
    # Long runs of what the patterns look for (backslashes, percent escapes, separators) take no quadratic time.
    import time

    for unit in (b"\\", b"%25", b"?a=", b'"a', b"?token=", b"\\u0026", b"%3Fx%3D"):
        data = unit * (size // len(unit))
        started = time.perf_counter()
        redact_payload(data)
        assert time.perf_counter() - started < 2.0, unit


# --- what a redacted payload gives when it is retried ---------------------------------------------------------

MUTATIONS = [
    lambda e: e,
    lambda e: e["body"]["progress"].__setitem__("requirement_count", "6"),
    lambda e: e["body"].pop("user"),
    lambda e: e["metadata"].__setitem__("event_time", "never"),
    lambda e: e["body"]["progress"].__setitem__("next_requirement_url", 5),
]


@given(token=token_values(), name=credential_names(), mutation=st.sampled_from(range(len(MUTATIONS))), style=st.integers(0, STYLES - 1),
       cut=st.none() | st.integers(0, 2000))
@budget(300)
def test_a_redacted_payload_parses_as_the_original_did(token, name, mutation, style, cut):
    event = _event_with_url(_url(name, token, "include%5B%5D=items", "per_page=99", "?"))
    MUTATIONS[mutation](event)
    payload = _serialise(event, style)
    if cut is not None:  # a broken input stays broken, rejected for the same kind of fault
        payload = payload[:cut]
    before, after = parse_event(payload), parse_event(redact_payload(payload))
    assert type(before) is type(after)
    if cut is None or isinstance(before, Tracked):
        assert before == after
    if isinstance(before, Rejected):
        assert before.reason.split(":")[0] == after.reason.split(":")[0]


def test_a_rejection_reason_never_quotes_a_credential():
    event = progress_event("2019-11-01T00:00:00Z")
    event["body"]["user"] = "https://c.example.edu/x?access_token=SECRET123"
    outcome = parse_event(encode(event))
    assert isinstance(outcome, Rejected) and "SECRET123" not in outcome.reason and REDACTED in outcome.reason
    assert "SECRET123" not in Rejected("got https://c/?token=SECRET123").reason


# --- URL fields: redacted before rows (and ranks) are made ------------------------------------------------------


@given(url=url_strings | st.builds(_url, credential_names(), token_values(), other_parameters, other_parameters, st.just("?")))
@budget(300)
def test_next_requirement_url_is_stored_redacted_and_both_paths_agree(url):
    event = progress_event("2019-11-01T00:00:00Z")
    event["body"]["progress"]["next_requirement_url"] = url
    document = orjson.loads(encode(event))
    fast, slow = fast_outcome(document), interpret(document)
    assert slow == fast or fast is None
    if isinstance(slow, Tracked):
        assert slow.rows[0].next_requirement_url == redact_text(url)


def test_two_events_differing_only_in_a_token_make_the_same_rows():
    first, second = (progress_event("2019-11-01T00:00:00Z") for _ in range(2))
    first["body"]["progress"]["next_requirement_url"] = "https://c/courses/1/modules/items/2?access_token=A"
    second["body"]["progress"]["next_requirement_url"] = "https://c/courses/1/modules/items/2?access_token=B"
    assert parse_event(encode(first)).rows == parse_event(encode(second)).rows


def test_a_shuffled_mix_of_separators_never_breaks_json():
    rng = random.Random(7)
    pieces = ["?", "&", "token", "=", "u0026", "/", '"', "%3D", "x", "#", ";", "\u212aey", "é"]
    for _ in range(2000):
        value = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 15)))
        hostile = "".join(rng.choice(pieces + ["\\"] * 3) for _ in range(rng.randint(0, 15)))
        for style in range(STYLES):
            assert _decoded(redact_payload(_serialise({"u": value}, style))) == {"u": redact_text(value)}
            assert _same_shape({"u": hostile}, _decoded(redact_payload(_serialise({"u": hostile}, style))))


@given(
    token=st.text(min_size=1, max_size=12).map(lambda t: json.dumps(t)[1:-1].encode())  # any text, as JSON escapes it
    | st.binary(min_size=1, max_size=12),  # or any bytes at all: not UTF-8, quotes, backslashes
    field=st.sampled_from(["metadata_url", "next_requirement_url"]),
    also_bad_count=st.booleans(),
)
@budget(300)
@example(token=b"ab\\ud800cd", field="next_requirement_url", also_bad_count=False)  # a lone surrogate
@example(token=b"ab\xffcd", field="metadata_url", also_bad_count=False)  # not UTF-8
def test_a_rejected_payload_gets_the_outcome_its_redacted_form_gets(token, field, also_bad_count):
    # The quarantine keeps the redacted payload; `rejected retry` parses that. Its outcome must be the original's.
    event = progress_event("2019-11-01T00:00:00Z")
    url = "https://c.example.edu/courses/565/modules/items/3?access_token=TOKEN_HERE&module_item_id=3"
    if field == "metadata_url":
        event["metadata"]["url"] = url
    else:
        event["body"]["progress"]["next_requirement_url"] = url
    if also_bad_count:
        event["body"]["progress"]["requirement_count"] = "six"
    payload = json.dumps(event).encode().replace(b"TOKEN_HERE", token)
    original, retried = parse_event(payload), parse_event(redact_payload(payload))
    assert original == retried
