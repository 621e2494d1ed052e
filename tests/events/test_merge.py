from datetime import datetime, timedelta, timezone

from consumer.events.merge import newest_per_key
from consumer.events.progress import ProgressRow, UserRow

T0 = datetime(2019, 11, 1, tzinfo=timezone.utc)


def user(user_id: int, name: str, minutes: int, rank: int = 0) -> UserRow:
    return UserRow(user_id, name, None, T0 + timedelta(minutes=minutes), rank)


def test_keeps_the_newest_row_per_key():
    merged = newest_per_key([user(2, "other", 0), user(1, "old", 1), user(1, "new", 5), user(1, "middle", 3)])
    assert merged == {UserRow: [user(1, "new", 5), user(2, "other", 0)]}  # sorted by key


def test_equal_event_time_is_decided_by_rank_in_any_order():
    low, high = user(1, "low", 1, rank=3), user(1, "high", 1, rank=7)
    assert newest_per_key([low, high])[UserRow] == [high]
    assert newest_per_key([high, low])[UserRow] == [high]


def test_equal_time_and_rank_is_a_duplicate():
    merged = newest_per_key([user(1, "same", 1, rank=3), user(1, "same", 1, rank=3)])
    assert merged[UserRow] == [user(1, "same", 1, rank=3)]


def test_kinds_are_kept_apart_and_keys_can_be_compound():
    progress = [
        ProgressRow(10, 1, 5, 1, None, None, False, None, "course_progress", T0, 0),
        ProgressRow(10, 2, 5, 2, None, None, False, None, "course_progress", T0, 0),
        ProgressRow(10, 1, 5, 3, None, None, False, None, "course_progress", T0 + timedelta(seconds=1), 0),
    ]
    merged = newest_per_key([*progress, user(1, "u", 0)])
    assert merged[ProgressRow] == [progress[2], progress[1]]  # sorted by key
    assert merged[UserRow] == [user(1, "u", 0)]
