"""The demo's stand-in model servers: two versions of a small scikit-learn model over OIP V2."""
