"""Zero-shot labels and moderation policies."""
