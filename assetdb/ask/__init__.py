"""`assetdb ask`: answer a question from the catalogue with an LLM (multimodal RAG).

retrieve.py chooses the sources (image -> image, by asset, or by the question's text),
pack.py builds the one deterministic context pack, models.py talks to the LLM through
the `llm` library (the `ask` extra)."""
