"""The seeded database every API test reads, as events through the real pipeline.

Account 79 has courses 565 and 777 (available) and 778 (deleted); account 80
has course 900. Course 999 has only a progress event (its course.account_id is 79).
"""

from __future__ import annotations

from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from tests.factory import course_event, progress_event, section_event
from tests.helpers import apply_events


def seed_events() -> list[dict]:
    events = []
    for course, account, state, name in ((565, 79, "available", "Computer Science I"), (777, 79, "available", "Calculus II"),
                                         (778, 79, "deleted", "Old Course"), (900, 80, "available", "Other Account")):
        events.append(course_event("2019-10-28T14:02:11Z", course_id=str(course), account_id=str(account),
                                   workflow_state=state, name=name, sis_source_id=f"SIS-{course}"))
    times = ["2019-09-01T10:00:00Z", "2019-09-15T10:00:00Z", "2019-10-01T10:00:00Z", "2019-10-20T10:00:00Z"]
    for user in range(1, 5):
        events.append(progress_event(times[user - 1], course_id="565", user_id=str(user), done=user, total=4,
                                     completed_at="2019-10-20T10:00:00Z" if user == 4 else None, user_name=f"Student {user}",
                                     event_name="course_completed" if user == 4 else "course_progress"))
    for user in (10, 11):
        events.append(progress_event("2019-09-20T10:00:00Z", course_id="777", user_id=str(user), done=1, total=5,
                                     course_name="Calculus II", sis_source_id="SIS-777", user_name=f"Student {user}"))
    events.append(progress_event("2019-09-21T10:00:00Z", course_id="777", user_id="12", error="not a student",
                                 course_name="Calculus II", sis_source_id="SIS-777", user_name="TA"))
    events.append(progress_event("2019-09-22T10:00:00Z", course_id="778", user_id="20", done=2, total=2, event_name="course_completed",
                                 completed_at="2019-09-22T10:00:00Z", course_name="Old Course", sis_source_id="SIS-778"))
    for user in (30, 31):
        events.append(progress_event("2019-09-23T10:00:00Z", course_id="900", user_id=str(user), done=0, total=3,
                                     course_name="Other Account", sis_source_id="SIS-900"))
    events.append(progress_event("2019-09-24T10:00:00Z", course_id="999", user_id="40"))
    for section, course, state in (("1021", "565", "active"), ("1022", "565", "deleted"), ("2001", "777", "active"),
                                   ("9001", "900", "active")):
        events.append(section_event("2019-09-02T10:00:00Z", section_id=section, course_id=course, workflow_state=state,
                                    name=f"Section {section}"))
    return events


def seeded(url: str) -> str:
    engine = make_engine(url)
    upgrade(engine)
    counts = apply_events(engine, seed_events())
    assert counts.rejected == 0
    engine.dispose()
    return url
