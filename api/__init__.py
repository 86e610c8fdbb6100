"""The FastAPI application: thin routers per audience over ``infra``'s runtime."""
