"""The default verifier: execute gold and candidates on the task's SQLite database and match."""

from __future__ import annotations

from rf_core.api import (DEFAULT_GOLD_VARIANTS_MAX_S, DEFAULT_VARIANTS_MAX_MB,
                         DEFAULT_VARIANTS_MAX_S, MAX_VARIANTS, Option, hookimpl, verify_tasks)


class FolderOption(Option):
    """A folder: an empty value is refused (an unset shell variable, most likely), since
    building in the working folder instead would leave cache folders wherever a run starts."""

    def convert(self, text: str):
        if not text.strip():
            raise ValueError("empty; give a folder, or leave the option out for the default")
        return super().convert(text)


class SQLiteVerifier:
    name = "sqlite"
    description = "Execute on the task's SQLite database (read-only, time/row/memory limits)."
    options = (
        Option("variants", int, 0, "Also check each candidate that matches on the original "
               f"database on N perturbed variants of it (test-suite accuracy); 0: off; at "
               f"most {MAX_VARIANTS}.", minimum=0, maximum=MAX_VARIANTS),
        Option("variants_seed", int, 0, "Seed of the variants."),
        Option("variants_max_mb", float, DEFAULT_VARIANTS_MAX_MB, "Databases larger than "
               "this get no variants (a note on stderr; their tasks are checked on the "
               "original only).", minimum=0),
        Option("variants_max_s", float, DEFAULT_VARIANTS_MAX_S, "Seconds building one "
               "database's variants may take; past it the build stops (a note on stderr; "
               "its tasks are checked on the original only).", minimum=0),
        FolderOption("variants_dir", str, None, "Variant cache folder (default: the cache "
                     "folder's variants/)."),
        Option("gold_variants_max_s", float, DEFAULT_GOLD_VARIANTS_MAX_S, "With rf-exec "
               "--for-training: seconds building one task's gold variant (rows that make an "
               "empty or degenerate gold result speak) may take; past it the task is "
               "unverifiable.", minimum=0),
    )

    def verify(self, tasks, *, matcher="official", jobs=1, limits=None, report=None,
               variants=0, variants_seed=0, variants_max_mb=DEFAULT_VARIANTS_MAX_MB,
               variants_max_s=DEFAULT_VARIANTS_MAX_S, variants_dir=None, for_training=False,
               gold_variants_max_s=DEFAULT_GOLD_VARIANTS_MAX_S, **_options):
        extra = {"limits": limits} if limits is not None else {}
        return verify_tasks(tasks, matcher=matcher, jobs=jobs, verifier=self.name,
                            report=report, variants=variants, variants_seed=variants_seed,
                            variants_max_mb=variants_max_mb, variants_max_s=variants_max_s,
                            variants_dir=variants_dir, for_training=for_training,
                            gold_variants_max_s=gold_variants_max_s, **extra)


@hookimpl
def register_verifiers(register):
    register(SQLiteVerifier())
