"""The HTTP layer: FastAPI routes, auth, validation. It starts workflows and messages them."""
