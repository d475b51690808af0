"""Between event models and stored records: the mapping pipeline."""
