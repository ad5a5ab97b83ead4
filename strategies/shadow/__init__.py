"""The shadow strategy: the stable answers, copies go to the candidate."""
