"""Pure event logic: envelopes, models, normalisation and merge rules (no I/O)."""
