"""Training helpers shared by trainers: examples, token batching, memory sizing."""
