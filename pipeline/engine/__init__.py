"""The driver's side of a run: config, plan (the cache), estimate, the run itself, verify as tasks."""
