"""One filter model -> SQL; text, image and vector search."""
