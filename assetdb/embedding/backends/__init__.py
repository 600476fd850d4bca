"""Model backends shipped with assetdb (see assetdb.embedding.registry)."""
