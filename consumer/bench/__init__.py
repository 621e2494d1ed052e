"""`canvas-progress bench`: our replay and worker against a naive baseline and the physical limits."""
