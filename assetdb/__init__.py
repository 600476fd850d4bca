"""assetdb: asset metadata and CLIP vectors in one PostgreSQL table."""

__version__ = "0.1.0"
