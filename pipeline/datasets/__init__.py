"""Dataset adapters (one file each); see pipeline/manifest.py for the contract."""
