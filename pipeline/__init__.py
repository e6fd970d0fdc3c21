"""affect-pipeline: decode-once audio-visual feature extraction into a crash-safe Zarr store.

The layers, top to bottom (docs/architecture.md): cli -> experiments -> engine -> runtime, shard -> media;
datasets -> media. ``errors`` is shared by all of them; nothing below ``pipeline`` imports it.
"""

from stores.version import package_version

__version__ = package_version()
