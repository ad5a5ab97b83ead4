"""Tests of router.upstream, the hot path's keep-alive pool, against real loopback servers."""
