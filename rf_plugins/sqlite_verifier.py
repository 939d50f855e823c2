"""The default verifier: execute gold and candidates on the task's SQLite database and match."""

from __future__ import annotations

from rf_core.api import hookimpl, verify_tasks


class SQLiteVerifier:
    name = "sqlite"
    description = "Execute on the task's SQLite database (read-only, time/row/memory limits)."

    def verify(self, tasks, *, matcher="official", jobs=1, limits=None, report=None,
               **variant_options):
        options = {"limits": limits} if limits is not None else {}
        return verify_tasks(tasks, matcher=matcher, jobs=jobs, verifier=self.name,
                            report=report, **options, **variant_options)


@hookimpl
def register_verifiers(register):
    register(SQLiteVerifier())
