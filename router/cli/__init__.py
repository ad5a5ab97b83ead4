"""The ``traffic-router`` command and its HTTP client for the admin API."""
