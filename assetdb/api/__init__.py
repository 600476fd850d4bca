"""HTTP API and the web search page (FastAPI). `create_app` builds the application."""

from assetdb.api.app import create_app

__all__ = ["create_app"]
