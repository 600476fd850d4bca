"""The Encoder protocol, the sentence-transformers CLIP backend and image loading."""
