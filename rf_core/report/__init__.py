"""Evaluation and reports: execution accuracy, self-consistency votes, statistics, history."""
