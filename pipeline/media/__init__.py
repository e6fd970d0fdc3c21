"""Decoding, the face stage and its tracker, synthetic media."""
