"""Pure, synchronous tests of the strategies package (the functional core)."""
