"""The SQL surface for analysts: concepts, query vectors, read-only SQL and export."""
