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


def format_completion(sql: str) -> str:
    """The answer as the prompt asks for it: the SQL alone, in a ```sql block."""
    return f"```sql\n{sql.strip()}\n```"


def revision_turns(cand: dict) -> list[dict]:
    """A candidate's earlier turns, oldest first (rf-revise; none for one never revised)."""
    rev = cand.get("revision")
    return list(rev.get("turns") or []) if isinstance(rev, dict) else []


def reply_of(cand: dict) -> str:
    """A candidate (or an earlier turn) as the assistant turn of a conversation: the model's
    reply as it was, or its SQL in a ```sql block where there is no text."""
    text, sql = cand.get("text"), cand.get("sql")
    if isinstance(text, str) and text.strip():
        return text
    return format_completion(sql) if isinstance(sql, str) and sql.strip() else ""


def revision_messages(task: dict, cand: dict) -> list[dict]:
    """The conversation that produced ``cand``: the task's prompt, then per earlier turn the
    model's reply and the feedback it was shown (rf-revise builds its prompts with this, and
    rf-filter --multi-turn its examples)."""
    messages = [dict(m) for m in task_messages(task)]
    for turn in revision_turns(cand):
        messages.append({"role": "assistant", "content": reply_of(turn)})
        messages.append({"role": "user", "content": str(turn.get("feedback", ""))})
    return messages
