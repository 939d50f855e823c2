"""A verifier plugin: a candidate is correct when its canonical SQL equals the gold's.

Canonical SQL is sqlglot's normalised SQLite rendering (keywords and identifiers in one
case, whitespace and quoting normalised); text sqlglot cannot parse is compared with its
whitespace collapsed.

A verdict-only verifier: it sets ``correct`` on every candidate and ``verified_by`` on every
task, as the verifier contract asks, and executes nothing, so it writes no ``exec``. rf-eval,
rf-filter and rf-inject work from the verdicts (rf-eval scores first candidates); rf-vote,
which groups candidates by their execution results, refuses its output with a line naming
this verifier and the missing ``exec``.
"""

from rf_core.api import canonical_sql, hookimpl


class CanonicalVerifier:
    name = "canonical"
    description = ("Exact match of sqlglot-canonical SQL against the gold query (no execution: "
                   "verdicts only, no exec, so no vote).")

    def verify(self, tasks, **options):
        for task in tasks:
            gold = task.get("gold_sql")
            gold_key = canonical_sql(gold) if gold else None
            for cand in task.get("candidates") or []:
                sql = cand.get("sql")
                if gold_key is None:
                    cand["correct"] = None
                else:
                    cand["correct"] = bool(sql) and canonical_sql(sql) == gold_key
            task["verified_by"] = {"verifier": self.name, "matcher": "canonical-sql"}
            yield task


@hookimpl
def register_verifiers(register):
    register(CanonicalVerifier())
