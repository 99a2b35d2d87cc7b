"""Second-generation resident ID card reader (SAM_V serial protocol)."""
