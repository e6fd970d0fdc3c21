"""affect-pipeline: decode-once audio-visual feature extraction into a crash-safe Zarr store."""

__version__ = "0.1.0"
