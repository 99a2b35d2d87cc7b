"""Camera: V4L2 capture through PyAV, and a deterministic synthetic source for simulation."""
