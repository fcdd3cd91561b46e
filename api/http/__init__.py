"""The HTTP face: routers, middleware and response helpers shared by the routes."""
