#!/usr/bin/env python3
"""Coverage-guided, JSON-aware fuzzing of parse_event: mutations of the golden events.

    python fuzz/parse_event_structured.py -max_total_time=600 fuzz/corpus-structured

The fuzzer's bytes are read with atheris.FuzzedDataProvider as choices: which
golden event (sample_events/ and tests/factory.py), which path in it
(metadata.*, body.*, progress/user/course, stuck_sis_fields items, absent
optional fields, new extra fields), what to do there (replace with any JSON
value, huge or hand-written numbers included; delete; wrap 1-1,100 levels
deep), which envelope (none, SNS once or twice, a bad SNS, Caliper) and
which event_name hint. One change is judged against the field's kind
exactly as the property test does (`check_mutation`: types as Canvas sends
them, the reason names the field and quotes the value as sent, extra fields
change nothing); several changes against the invariants.
"""

from __future__ import annotations

import copy

import _harness
import atheris
from _harness import total

BASES = total.BASES
PATHS = [total.BASE_PATHS[base.label] for base in BASES]
FIELD_NAMES = total.field_names + ["metadata", "body", "event_name", "event_time", "x_extra_field", ""]
STRINGS = total.SPECIAL_STRINGS + total.VALID_TIMES + total.INVALID_TIMES
SMALL_INTS = [0, 1, -1, 6, 565, total.MAX_COUNT, total.MAX_COUNT + 1, total.MAX_BIGINT, total.MAX_BIGINT + 1,
              2**64 - 1, 2**64, 10**13, 21070000000000565, 10**30 + 7, -(2**63) - 1]


def json_value(fdp: atheris.FuzzedDataProvider, budget: int = 3) -> object:
    """Any JSON-like value the test encoder can write (Raw and Deep included)."""
    choice = fdp.ConsumeIntInRange(0, 15 if budget > 0 else 12)
    if choice == 0:
        return None
    if choice == 1:
        return fdp.ConsumeBool()
    if choice == 2:
        return SMALL_INTS[fdp.ConsumeIntInRange(0, len(SMALL_INTS) - 1)]
    if choice == 3:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 24))  # up to 192 bits, negative too
    if choice == 4:
        return fdp.ConsumeFloat()  # nan and inf included
    if choice == 5:
        return total.RAW_NUMBERS[fdp.ConsumeIntInRange(0, len(total.RAW_NUMBERS) - 1)]
    if choice in (6, 7):
        return STRINGS[fdp.ConsumeIntInRange(0, len(STRINGS) - 1)]
    if choice == 8:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16))  # lone surrogates and controls too
    if choice == 9:
        return "".join("0123456789"[fdp.ConsumeIntInRange(0, 9)] for _ in range(fdp.ConsumeIntInRange(1, 40)))
    if choice == 10:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 16))
    if choice == 11:
        text = STRINGS[fdp.ConsumeIntInRange(0, len(STRINGS) - 1)]
        cut = fdp.ConsumeIntInRange(0, len(text))
        return text[:cut] + fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 3)) + text[cut:]
    if choice == 12:
        number = fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 40))
        if fdp.ConsumeBool():  # written with a fraction ("5.0", "5.000"): never an id or a count
            return total.Raw(f"{number}." + "0" * fdp.ConsumeIntInRange(1, 3))
        return number  # an integer literal of up to 40 bytes: the encoder writes it exactly
    if choice == 13:
        return [json_value(fdp, budget - 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    if choice == 14:
        return {key(fdp): json_value(fdp, budget - 1) for _ in range(fdp.ConsumeIntInRange(0, 4))}
    return total.Deep(json_value(fdp, budget - 1), depth(fdp), "list" if fdp.ConsumeBool() else "dict")


def key(fdp: atheris.FuzzedDataProvider) -> str:
    if fdp.ConsumeBool():
        return FIELD_NAMES[fdp.ConsumeIntInRange(0, len(FIELD_NAMES) - 1)]
    return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 8))


def depth(fdp: atheris.FuzzedDataProvider) -> int:
    special = [254, 255, 256, 300, 498, 600, 990, 1000, 1021, 1022, 1023, 1024, 1025]
    if fdp.ConsumeBool():
        return special[fdp.ConsumeIntInRange(0, len(special) - 1)]
    return fdp.ConsumeIntInRange(1, 1100)


def change(fdp: atheris.FuzzedDataProvider, paths: list[tuple]) -> tuple[tuple, str, object]:
    path = paths[fdp.ConsumeIntInRange(0, len(paths) - 1)]
    op = ["replace", "replace", "delete", "wrap"][fdp.ConsumeIntInRange(0, 3)]
    if op == "wrap":
        return path, op, (depth(fdp), "list" if fdp.ConsumeBool() else "dict")
    return path, op, json_value(fdp) if op == "replace" else None


def hint(fdp: atheris.FuzzedDataProvider, name: str) -> str | None:
    choice = fdp.ConsumeIntInRange(0, 7)
    if choice < 5:
        return None
    if choice == 5:
        return name
    return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 20))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    index = fdp.ConsumeIntInRange(0, len(BASES) - 1)
    base = BASES[index]
    ascii_only = fdp.ConsumeBool()
    if fdp.ConsumeIntInRange(0, 2):  # two times in three: one change, judged by the field's kind
        path, op, value = change(fdp, PATHS[index])
        wrapper = ["none", "none", "sns", "sns2"][fdp.ConsumeIntInRange(0, 3)]
        total.check_mutation(base, path, op, value, wrapper, ascii_only)
        return
    document = copy.deepcopy(base.document)
    for _ in range(fdp.ConsumeIntInRange(2, 5)):
        path, op, value = change(fdp, PATHS[index])
        try:
            total.mutate(document, path, op, value)
        except (KeyError, IndexError, TypeError):
            pass  # the path went away with an earlier change
    payload = total.encode(document, ascii_only)
    wrapper = fdp.ConsumeIntInRange(0, 6)
    if wrapper in (1, 2):
        payload = total.envelope(payload, "sns" if wrapper == 1 else "sns2")
    elif wrapper == 3:
        payload = total.encode({"Type": "Notification", "Message": json_value(fdp)})
    elif wrapper == 4:
        payload = total.encode({"sensor": "http://oxana.instructure.com/", "dataVersion": json_value(fdp),
                                "data": [document]})
    elif wrapper == 5:
        payload = payload[: fdp.ConsumeIntInRange(0, len(payload))]
    total.parse_checked(payload, hint(fdp, base.document["metadata"]["event_name"]))


if __name__ == "__main__":
    _harness.run(test_one_input, max_len=512)
