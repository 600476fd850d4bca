"""One filter model -> SQL; text, image and vector search."""

MAX_K = 1000  # the most results one search returns (here: --help shows it without imports)
