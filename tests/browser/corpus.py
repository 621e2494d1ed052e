"""A corpus for the dashboard's browser tests: two accounts, courses whose students progress over weeks.

Deterministic (one seed), as Live Events envelopes (tests/factory.py), written as NDJSON and replayed by
the real `canvas-progress replay`. Account HOME has more courses than one page of the dashboard shows,
some with hostile names; account OTHER has a few whose names must never reach HOME's token.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.factory import course_event, progress_event

HOME, OTHER = 79, 80
HOSTILE_NAMES = [
    '<img src=x onerror="document.title=\'pwned\'">Algebra',
    "=HYPERLINK(\"http://evil.example/\",\"click\")",
    "\u202eLatin Reversed",
    "Ünïcödé Grundlagen — Kurs",
]
SUBJECTS = ["Algebra", "Biology", "Chemistry", "Drawing", "Economics", "French", "Geology", "History", "Italian",
            "Journalism", "Kinesiology", "Linguistics", "Music", "Nursing", "Optics", "Physics"]
OTHER_NAMES = ["Secret Seminar Alpha", "Secret Seminar Beta", "Secret Seminar Gamma"]
START = datetime(2019, 8, 19, 9, 0, tzinfo=timezone.utc)


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def events(seed: int = 15) -> list[dict]:
    rng = random.Random(seed)
    names = [f"{SUBJECTS[i % len(SUBJECTS)]} {100 + i}" for i in range(60)] + HOSTILE_NAMES
    plan = [(2000 + i, HOME, name) for i, name in enumerate(names)] + [(3000 + i, OTHER, n) for i, n in enumerate(OTHER_NAMES)]
    out: list[dict] = []
    user = 10_000
    for course_id, account, name in plan:
        state = "deleted" if course_id == 2007 else "available"
        out.append(course_event(_time(START - timedelta(days=30)), course_id=str(course_id), account_id=str(account),
                                workflow_state=state, name=name, sis_source_id=f"SIS-{course_id}", event_name="course_created"))
        total = rng.randint(4, 12)
        for _ in range(rng.randint(0, 24) if course_id % 10 else 0):  # every tenth course has no students
            user += 1
            moment = START + timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 10))
            done = 0
            while True:
                done = min(total, done + rng.randint(1, 3))
                finished = done == total
                out.append(progress_event(
                    _time(moment), course_id=str(course_id), user_id=str(user), done=done, total=total,
                    event_name="course_completed" if finished else "course_progress",
                    completed_at=_time(moment) if finished else None, course_name=name,
                    sis_source_id=f"SIS-{course_id}", user_name=f"Student {user}",
                ))
                moment += timedelta(days=rng.randint(1, 12), minutes=rng.randint(0, 600))
                if finished or rng.random() < 0.25 or moment > START + timedelta(days=100):
                    break
    rng.shuffle(out)  # any order: the tables do not depend on it
    return out


def write(path: Path, seed: int = 15) -> Path:
    with path.open("w") as stream:
        for event in events(seed):
            stream.write(json.dumps(event) + "\n")
    return path
