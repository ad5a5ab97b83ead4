"""The canary strategy: spec and state (model), sticky picker, transitions."""
