"""Vocabulary extension: merge-aware BPE extension of a base model and embedding initialisation."""
