"""Seeded synthetic Canvas Live Events, for load tests, benchmarks and demos.

The mix is close to real traffic: about 60% course_progress /
course_completed, 20% section events, 10% course events, 10% untracked
types, plus 10% duplicate deliveries, shuffled. Same seed, same events.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

_START = datetime(2024, 8, 26, 12, 0, tzinfo=timezone.utc)
_SHARD = 2107 * 10**13
_OFFSETS = [timezone.utc, timezone(timedelta(hours=-6)), timezone(timedelta(hours=-4)), timezone(timedelta(hours=1))]
_UNTRACKED = ["asset_accessed", "logged_in", "submission_created", "enrollment_updated", "wiki_page_updated"]


def _metadata(name: str, when: datetime, rng: random.Random) -> dict[str, Any]:
    return {
        "event_name": name,
        "event_time": when.astimezone(rng.choice(_OFFSETS)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "producer": "canvas",
        "root_account_id": str(_SHARD + 1),
        "root_account_uuid": "VicYj3cu5BIFpoZhDVU4DZumnlBrWi1grgJEzADs",
    }


def _event(rng: random.Random, n: int, courses: int, students: int) -> dict[str, Any]:
    when = _START + timedelta(milliseconds=n * 37 + rng.randrange(37))  # distinct, increasing instants
    course = rng.randrange(1, courses + 1)
    roll = rng.random()
    if roll < 0.60:
        total = 5 + course % 20
        done = rng.randrange(0, total + 1)
        name = "course_completed" if done == total else "course_progress"
        user = rng.randrange(1, students + 1)
        user_id = str(_SHARD + user) if user % 50 == 0 else str(user)  # some cross-shard students
        return {
            "metadata": _metadata(name, when, rng),
            "body": {
                "progress": {
                    "requirement_count": total,
                    "requirement_completed_count": done,
                    "next_requirement_url": None if done == total else f"https://canvas.example.edu/courses/{course}/modules/items/{done + 1}",
                    "completed_at": when.isoformat(timespec="milliseconds") if done == total else None,
                },
                "user": {"id": user_id, "name": f"Student {user}", "email": f"student{user}@example.edu"},
                "course": {"id": str(course), "name": f"Course {course}", "account_id": str(1 + course % 7), "sis_source_id": f"SIS-{course}"},
            },
        }
    if roll < 0.80:
        section = course * 10 + rng.randrange(3)
        return {
            "metadata": _metadata(rng.choice(["course_section_created", "course_section_updated"]), when, rng),
            "body": {
                "course_section_id": str(section), "sis_source_id": f"SEC-{section}", "sis_batch_id": None, "course_id": str(course),
                "root_account_id": "1", "enrollment_term_id": str(1 + course % 3), "name": f"Section {section}",
                "default_section": section % 10 == 0, "accepting_enrollments": True, "can_manually_enroll": None,
                "start_at": "2024-08-26T08:00:00-05:00", "end_at": "2024-12-20T17:00:00-06:00", "workflow_state": "active",
                "restrict_enrollments_to_section_dates": False, "nonxlist_course_id": None, "stuck_sis_fields": ["name"], "integration_id": None,
            },
        }
    if roll < 0.90:
        return {
            "metadata": _metadata(rng.choice(["course_created", "course_updated"]), when, rng),
            "body": {
                "course_id": str(_SHARD + course), "uuid": f"uuid-{course:08d}", "account_id": str(_SHARD + 1 + course % 7),
                "name": f"Course {course} ({rng.choice(['Fall', 'Spring'])})", "created_at": "2024-08-01T10:00:00Z",
                "updated_at": when.isoformat(timespec="milliseconds"), "workflow_state": rng.choice(["available", "claimed"]),
            },
        }
    return {"metadata": _metadata(rng.choice(_UNTRACKED), when, rng), "body": {"id": str(n)}}


def generate(count: int, seed: int = 0, courses: int = 200, students: int = 20_000) -> Iterator[bytes]:
    """`count` encoded events (duplicates included), shuffled within windows of 10,000 to keep memory flat."""
    rng = random.Random(seed)
    window: list[bytes] = []
    produced = 0
    n = 0
    while produced < count:
        if window and rng.random() < 0.10:
            window.append(rng.choice(window))  # a duplicate delivery
        else:
            window.append(orjson.dumps(_event(rng, n, courses, students)))
            n += 1
        produced += 1
        if len(window) == 10_000:
            rng.shuffle(window)
            yield from window
            window = []
    rng.shuffle(window)
    yield from window
