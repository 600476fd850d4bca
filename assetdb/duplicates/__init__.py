"""Near-duplicate assets: perceptual hashes made at ingest, candidate pairs from the
vector index and the hashes, groups with a suggested keeper, and reversible actions."""
