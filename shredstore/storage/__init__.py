"""SQL storage of the event log: engines, schema, the hash chain, appends and reads."""
