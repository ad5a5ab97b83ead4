"""The blue-green strategy: spec and state (model), transitions."""
