"""Contrastive fine-tuning and retrieval evaluation of CLIP models."""
