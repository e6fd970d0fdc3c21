"""Dataset adapters (one file each); see pipeline/datasets/manifest.py for the contract."""
