"""Pull the SQL out of a model's answer: code fences, prose around it, truncated output."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
# A query starts at SELECT, or at WITH only when a CTE follows ("with the most books" is prose).
_START = re.compile(r"\bSELECT\b|\bWITH\s+(?:RECURSIVE\s+)?[\w\"`]+\s*(?:\([^)]*\))?\s*AS\s*\(",
                    re.IGNORECASE)
_SQLISH = re.compile(r"\b(SELECT|WITH|INSERT|UPDATE|DELETE|CREATE|DROP|PRAGMA|VALUES)\b",
                     re.IGNORECASE)


def _first_statement(text: str) -> str:
    """Text up to the first semicolon outside quotes (or the end), trimmed."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
        elif ch == ";":
            return text[:i].strip()
    return text.strip()


def extract_sql(text: str | None) -> str | None:
    """The SQL query in ``text``, or None when there is none.

    Preference: the first fenced block labelled sql (or unlabelled) that looks like SQL; an
    unterminated fence (generation cut off) counts up to the end. Without fences: from the first
    SELECT/WITH to the first semicolon or blank line. Trailing semicolons are dropped.
    """
    if not text or not text.strip():
        return None
    blocks = [body for lang, body in _FENCE.findall(text)
              if lang.lower() in ("sql", "sqlite", "") and _SQLISH.search(body)]
    # a block with a query beats one with, say, the schema echoed back
    for body in sorted(blocks, key=lambda b: _START.search(b) is None):
        start = _START.search(body)
        sql = _first_statement(body[start.start():] if start else body)
        if sql:
            return sql
    match = _START.search(text)
    if not match:
        return None
    rest = text[match.start():]
    rest = re.split(r"\n\s*\n", rest, maxsplit=1)[0]
    sql = _first_statement(rest)
    return sql or None
