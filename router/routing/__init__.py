"""The immutable routing snapshot compiled at load, route matching, backends at run time."""
