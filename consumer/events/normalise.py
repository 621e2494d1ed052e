"""Turn validated event models into table rows (CONTRACT section 2 and 4).

Ids become local ids, times are already aware UTC instants (see
`timestamps.py`). A progress-type event yields three rows: the progress
row, the student, and what it says about the course.
"""

from __future__ import annotations

from datetime import datetime

from consumer.events.ids import to_local
from consumer.events.models import CourseBody, ProgressBody, SectionBody
from consumer.events.rows import CourseMentionRow, CourseRow, ProgressRow, Row, SectionRow, UserRow


def course_rows(body: CourseBody, event_time: datetime) -> tuple[Row, ...]:
    return (
        CourseRow(
            id=to_local(body.course_id),
            global_id=body.course_id,
            account_id=to_local(body.account_id),
            name=body.name,
            uuid=body.uuid,
            workflow_state=body.workflow_state,
            created_at=body.created_at,
            updated_at=body.updated_at,
            course_event_time=event_time,
        ),
    )


def section_rows(body: SectionBody, event_name: str, event_time: datetime) -> tuple[Row, ...]:
    return (
        SectionRow(
            id=to_local(body.course_section_id),
            course_id=to_local(body.course_id),
            name=body.name,
            sis_source_id=body.sis_source_id,
            sis_batch_id=to_local(body.sis_batch_id),
            integration_id=body.integration_id,
            enrollment_term_id=to_local(body.enrollment_term_id),
            nonxlist_course_id=to_local(body.nonxlist_course_id),
            root_account_id=to_local(body.root_account_id),
            default_section=body.default_section,
            accepting_enrollments=body.accepting_enrollments,
            restrict_enrollments_to_section_dates=body.restrict_enrollments_to_section_dates,
            start_at=body.start_at,
            end_at=body.end_at,
            workflow_state=body.workflow_state,
            stuck_sis_fields=body.stuck_sis_fields,
            last_event_name=event_name,
            last_event_time=event_time,
        ),
    )


def progress_rows(body: ProgressBody, event_name: str, event_time: datetime) -> tuple[Row, ...]:
    course_id = to_local(body.course.id)
    user_id = to_local(body.user.id)
    progress = body.progress
    completed = event_name == "course_completed"
    if progress.error is not None:
        counts = (None, None, None, None)
        error = progress.error.message if progress.error.message is not None else "unknown error"
    else:
        completed_at = progress.completed_at
        if completed and completed_at is None:
            completed_at = event_time
        counts = (
            progress.requirement_count,
            progress.requirement_completed_count,
            progress.next_requirement_url,
            completed_at,
        )
        error = None
    return (
        ProgressRow(course_id, user_id, *counts, completed, error, event_name, event_time),
        UserRow(id=user_id, name=body.user.name, email=body.user.email, last_event_time=event_time),
        CourseMentionRow(
            id=course_id,
            account_id=to_local(body.course.account_id),
            name=body.course.name,
            sis_source_id=body.course.sis_source_id,
            progress_event_time=event_time,
        ),
    )
