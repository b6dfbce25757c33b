"""Model building and loading: tiny models from a transformers config, real ones by hub id/path."""
