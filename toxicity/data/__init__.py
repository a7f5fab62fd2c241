"""Comments in, padded token batches out.

CSV → validated frame (text + 0/1 tag columns) → split → balance and augment (train only, optional)
→ token ids (once) → length-grouped batches padded per batch: sources, validation, splits, augment,
tokenize, batching and the DataModule that runs them in that order. Beside them: table readers (CSV,
TSV, Parquet, in row ranges for sharded scoring) and the hybrid family's text hashing."""
