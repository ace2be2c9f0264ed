"""Content store, metadata database, layers and snapshots."""
