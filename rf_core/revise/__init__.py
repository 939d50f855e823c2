"""Execute and revise: a candidate's query is run, the model is shown what it did (an error,
an empty result, or the first rows) and asked for a corrected query (rf-revise)."""
