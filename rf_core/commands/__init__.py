"""The rf-* commands: each parses options, calls one rf_core function, writes records."""
