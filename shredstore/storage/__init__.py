"""SQL storage of the event log.

- `schema`: every shredstore table, in one `MetaData`, and the append-only triggers;
- `engine`: engines (configured by `keyvault.engine`) and `translate_errors`, the one place
  where driver errors become shredstore's;
- `statements`: the hot path's SQL, written out for the driver from the schema's names;
- `formats`: values in each backend's stored formats for that SQL, and the subjects column;
- `log`: `EventLog`, appends and reads of the events table and its subject index;
- `chain`: the hash chain and the verify walk; `authentication`: per-row authenticators;
- `index`: the subject index checked against the events; `snapshots`: the snapshot table;
- `scope`: `Scope`, which events a report covers.
"""
