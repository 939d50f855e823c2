"""Models: the offline model cache and loading, prompts and chat templates, candidates.

Nothing here imports torch at module top; functions that use a model import it.
"""
