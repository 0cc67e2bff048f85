"""A FastAPI app that enqueues jobs from its requests (see ../README.md)."""
