"""Paper presets (presets/*.yaml) and the experiment runner: extract, then train, then the table."""
