"""The typical tutorial consumer, as the baseline: json.loads, pydantic, ORM merge, a commit per event.

It ignores the ordering rules (last arrival wins): it is only here to be timed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, registry

from consumer.events.course import KIND as COURSE
from consumer.events.course import CourseBody
from consumer.events.ids import to_local
from consumer.events.progress import KIND as PROGRESS
from consumer.events.progress import ProgressBody
from consumer.events.section import KIND as SECTION
from consumer.events.section import SectionBody
from consumer.events.timestamps import parse_timestamp
from consumer.store.tables import course_progress, course_sections, courses, users


class Course:
    pass


class Section:
    pass


class Progress:
    pass


class User:
    pass


_mapper = registry()
_mapper.map_imperatively(Course, courses)
_mapper.map_imperatively(Section, course_sections)
_mapper.map_imperatively(Progress, course_progress)
_mapper.map_imperatively(User, users)


def _entity(cls: type, **values: object) -> object:
    entity = cls()
    for name, value in values.items():
        setattr(entity, name, value)
    return entity


def naive_consume(engine: Engine, payloads: Iterable[bytes]) -> int:
    """Consume events one by one; returns how many were tracked."""
    tracked = 0
    for payload in payloads:
        try:
            event = json.loads(payload)
            name = event["metadata"]["event_name"]
            when = parse_timestamp(event["metadata"]["event_time"])
            with Session(engine) as session:
                if name in PROGRESS.event_names:
                    body = ProgressBody.model_validate(event["body"])
                    session.merge(
                        _entity(
                            Progress, course_id=to_local(body.course.id), user_id=to_local(body.user.id),
                            requirement_count=body.progress.requirement_count,
                            requirement_completed_count=body.progress.requirement_completed_count,
                            next_requirement_url=body.progress.next_requirement_url, completed_at=body.progress.completed_at,
                            is_completed=name == "course_completed", progress_error=None, last_event_name=name, last_event_time=when,
                        )
                    )
                    session.merge(_entity(User, id=to_local(body.user.id), name=body.user.name, email=body.user.email, last_event_time=when))
                elif name in SECTION.event_names:
                    section = SectionBody.model_validate(event["body"])
                    session.merge(
                        _entity(
                            Section, id=section.course_section_id, course_id=section.course_id, name=section.name,
                            workflow_state=section.workflow_state, stuck_sis_fields=section.stuck_sis_fields,
                            last_event_name=name, last_event_time=when,
                        )
                    )
                elif name in COURSE.event_names:
                    course = CourseBody.model_validate(event["body"])
                    session.merge(_entity(Course, id=to_local(course.course_id), global_id=course.course_id, name=course.name, course_event_time=when))
                else:
                    continue
                session.commit()
                tracked += 1
        except Exception:  # a baseline, not a consumer: bad events are simply skipped
            continue
    return tracked
