"""The one prompt renderer: a task's schema context and question become chat messages.

Samplers store the exact messages they used on the task, and training examples carry the
same messages, so sampling and training can never drift apart.
"""

from __future__ import annotations

SYSTEM_PROMPT = (
    "You are an expert in SQLite. Given a database schema and a question, write one SQLite "
    "query that answers the question. Reply with the SQL query only, in a ```sql code block."
)


def render_messages(task: dict) -> list[dict]:
    """System and user messages for a task with ``schema`` and ``question``."""
    schema = task.get("schema") or ""
    user = f"Database schema:\n{schema}\n\nQuestion: {task['question']}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def task_messages(task: dict) -> list[dict]:
    """The messages a task was sampled with, or the rendered ones if it was never sampled."""
    return task.get("messages") or render_messages(task)
