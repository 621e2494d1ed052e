"""Canvas LMS Live Events consumer and course-progress tracker."""

__version__ = "0.1.0"
