"""The cloud's HTTP API (FastAPI), versioned under /api/v1."""
