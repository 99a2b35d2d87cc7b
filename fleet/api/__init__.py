"""Fleet operations routers (each module exposes ``router``)."""
