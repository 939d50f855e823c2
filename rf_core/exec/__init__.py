"""SQL execution: the read-only SQLite executor, the worker pool, matchers, verification."""
