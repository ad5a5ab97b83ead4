"""Shadow mirroring: bounded fire-and-forget dispatch, comparison stats, the mismatch log."""
