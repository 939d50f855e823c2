"""Records and streams: JSONL reading and writing, schema checks, signal-safe writes."""
