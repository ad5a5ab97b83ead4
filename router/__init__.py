"""traffic-router: the imperative shell (I/O)."""
