"""The documentation of every event and context type the demo emits.

`register_demo_types(tracker)` registers them, so the demo store carries a
documented catalogue (``eventtracking catalog --store events.db --check``
passes) and every stored event refers to the version it was emitted under.
Fields that identify a person are marked ``pii``: the catalogue masks them in
its examples. Descriptions follow Open edX's tracking-log documentation.
"""

from __future__ import annotations

from typing import Any, Final

from ..tracker import Tracker

_REQUIRED_STRING: Final = {"type": "string", "required": True}
_VIDEO: Final[dict[str, Any]] = {
    "id": {**_REQUIRED_STRING, "description": "The video block's usage key."},
    "code": {**_REQUIRED_STRING, "description": "The video source ('html5' or a YouTube id)."},
}
_POSITION: Final[dict[str, Any]] = {
    "currentTime": {
        "type": "number",
        "required": True,
        "description": "Seconds from the start of the video when the event happened.",
    }
}
_PROBLEM: Final[dict[str, Any]] = {
    "problem_id": {**_REQUIRED_STRING, "description": "The problem block's usage key."}
}

EVENT_TYPES: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "navigation.request": (
        "A page was requested (the Open edX README example and every simulated page view).",
        {"url": {**_REQUIRED_STRING, "description": "The full URL requested."}},
    ),
    "edx.course.enrollment.activated": (
        "A learner enrolled in a course (server side, when the enrollment is saved).",
        {
            "course_id": {**_REQUIRED_STRING, "description": "The course run's key."},
            "user_id": {
                "type": "integer",
                "required": True,
                "pii": True,
                "description": "The enrolled learner's user id.",
            },
            "mode": {
                **_REQUIRED_STRING,
                "enum": ["audit", "verified"],
                "description": "The enrollment track.",
            },
        },
    ),
    "edx.ui.lms.sequence.next_selected": (
        "The learner pressed 'next' in a subsection's unit navigation.",
        {
            "id": {**_REQUIRED_STRING, "description": "The sequence block's usage key."},
            "current_tab": {
                "type": "integer",
                "required": True,
                "description": "The unit shown before the click (1-based).",
            },
            "tab_count": {
                "type": "integer",
                "required": True,
                "description": "How many units the sequence has.",
            },
            "widget_placement": {
                **_REQUIRED_STRING,
                "enum": ["top", "bottom"],
                "description": "Which navigation bar was used.",
            },
        },
    ),
    "edx.forum.thread.created": (
        "A learner started a discussion thread.",
        {
            "commentable_id": {**_REQUIRED_STRING, "description": "The discussion topic's id."},
            "thread_type": {
                **_REQUIRED_STRING,
                "enum": ["discussion", "question"],
                "description": "A discussion or a question.",
            },
            "title": {
                **_REQUIRED_STRING,
                "pii": True,
                "description": "The thread title, as written by the learner.",
            },
            "anonymous": {
                "type": "boolean",
                "required": True,
                "description": "Posted anonymously to other learners.",
            },
        },
    ),
    "edx.video.loaded": (
        "The video player finished loading a video.",
        {
            **_VIDEO,
            "duration": {
                "type": "number",
                "required": True,
                "description": "The video's length in seconds.",
            },
        },
    ),
    "edx.video.played": ("The learner started or resumed a video.", {**_VIDEO, **_POSITION}),
    "edx.video.paused": ("The learner paused a video.", {**_VIDEO, **_POSITION}),
    "edx.video.stopped": ("A video played to its end.", {**_VIDEO, **_POSITION}),
    "edx.video.position.changed": (
        "The learner moved the playhead (seeked).",
        {
            **_VIDEO,
            "old_time": {
                "type": "number",
                "required": True,
                "description": "Seconds from the start before seeking.",
            },
            "new_time": {
                "type": "number",
                "required": True,
                "description": "Seconds from the start after seeking.",
            },
            "type": {
                **_REQUIRED_STRING,
                "description": "How the learner seeked (e.g. 'onSlideSeek').",
            },
        },
    ),
    "problem_check": (
        "A learner submitted an answer to a problem and it was graded (server side).",
        {
            **_PROBLEM,
            "attempts": {
                "type": "integer",
                "required": True,
                "description": "How many times the learner has submitted, this one included.",
            },
            "grade": {"type": "integer", "required": True, "description": "Points earned."},
            "max_grade": {
                "type": "integer",
                "required": True,
                "description": "Points possible.",
            },
            "success": {
                **_REQUIRED_STRING,
                "enum": ["correct", "incorrect"],
                "description": "Whether every part was answered correctly.",
            },
        },
    ),
    "showanswer": ("A learner asked to see a problem's answer.", _PROBLEM),
}

_USER_ID: Final = {
    "type": "integer",
    "required": True,
    "pii": True,
    "description": "The learner's user id.",
}
CONTEXT_TYPES: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "outer": (
        "The Open edX README example's outer context: who is acting.",
        {"user_id": _USER_ID},
    ),
    "session": (
        "One learner's visit: who they are and which browser they use.",
        {
            "user_id": _USER_ID,
            "username": {**_REQUIRED_STRING, "pii": True, "description": "The learner's username."},
            "session": {
                **_REQUIRED_STRING,
                "pii": True,
                "description": "A hash of the session key (32 hex digits).",
            },
            "ip": {**_REQUIRED_STRING, "pii": True, "description": "The client's IP address."},
            "agent": {
                **_REQUIRED_STRING,
                "pii": True,
                "description": "The browser's User-Agent header.",
            },
            "accept_language": {
                **_REQUIRED_STRING,
                "description": "The browser's Accept-Language header.",
            },
        },
    ),
    "request": (
        "One HTTP request within the visit.",
        {
            "host": {**_REQUIRED_STRING, "description": "The host the request was sent to."},
            "path": {**_REQUIRED_STRING, "description": "The URL path requested."},
            "referer": {
                **_REQUIRED_STRING,
                "description": "The Referer header ('' when there was none).",
            },
        },
    ),
    "page": (
        "The course a courseware page belongs to.",
        {
            "course_id": {**_REQUIRED_STRING, "description": "The course run's key."},
            "org_id": {**_REQUIRED_STRING, "description": "The organisation running the course."},
        },
    ),
}


def register_demo_types(tracker: Tracker) -> None:
    """Document every event and context type the demo emits on `tracker`."""
    for name, (description, fields) in EVENT_TYPES.items():
        tracker.register(name, description, fields, source=__name__)
    for name, (description, fields) in CONTEXT_TYPES.items():
        tracker.register_context(name, description, fields, source=__name__)
