"""ReasonForge core: records, JSONL streams, plugins, SQL execution and matching.

Command modules in rf_core.commands are thin click wrappers over the functions here.
"""

__version__ = "0.1.0"
