"""Between models and stored records: the mapping pipeline.

Each step is a pair, one way for appends (dump) and one for reads (load), tested on its own
(``tests/mapping/``)::

    step                      dump (append)                      load (read)
    registry                  registry.registered_class          registry.class_for
    split personal fields     split.split                        split.join / split.redact
    encode plain JSON         encoding.encode_values, to_json    encoding.decode_values, ...
    seal per subject          sealing.seal                       sealing.unseal (open, or None:
                                                                 erased, so redact)
    encode personal column    column.encode_*                    column.decode_column
    upcast                    (records are written current)      shredstore.upcasting
    validate model            validation.check_reads_back        validation.validate

`mapper` puts the steps together for events (`EventMapper`), `snapshots` for aggregate
snapshots; `sealing.open_groups` is the read of a record's whole personal column (decoded
groups opened, or redacted, and joined into its data). `column` is the one codec of the
stored personal column: whatever reads or writes that column (events, snapshots, audit,
erasure, and later sagas and the relay) uses it.

This package imports nothing on its own, so that the model layer may import a step module
without importing the pipeline.
"""
