"""Rollout control: rollouts and their state store, the config watcher, health checks."""
