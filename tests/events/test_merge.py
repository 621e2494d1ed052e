from datetime import datetime, timedelta, timezone

from consumer.events.merge import newest_per_key
from consumer.events.rows import ProgressRow, UserRow

T0 = datetime(2019, 11, 1, tzinfo=timezone.utc)


def user(user_id: int, name: str, minutes: int) -> UserRow:
    return UserRow(user_id, name, None, T0 + timedelta(minutes=minutes))


def test_keeps_the_newest_row_per_key():
    merged = newest_per_key([user(2, "other", 0), user(1, "old", 1), user(1, "new", 5), user(1, "middle", 3)])
    assert merged == {UserRow: [user(1, "new", 5), user(2, "other", 0)]}  # sorted by key


def test_equal_event_time_keeps_the_first_row():
    merged = newest_per_key([user(1, "first", 1), user(1, "second", 1)])
    assert merged[UserRow] == [user(1, "first", 1)]


def test_kinds_are_kept_apart_and_keys_can_be_compound():
    progress = [
        ProgressRow(10, 1, 5, 1, None, None, False, None, "course_progress", T0),
        ProgressRow(10, 2, 5, 2, None, None, False, None, "course_progress", T0),
        ProgressRow(10, 1, 5, 3, None, None, False, None, "course_progress", T0 + timedelta(seconds=1)),
    ]
    merged = newest_per_key([*progress, user(1, "u", 0)])
    assert merged[ProgressRow] == [progress[2], progress[1]]  # sorted by key
    assert merged[UserRow] == [user(1, "u", 0)]
