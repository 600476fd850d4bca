"""Scanning, sidecar metadata, embedding files, and the ingest service."""
