"""Registries: talking to them (client side) and being one (``dockyard registry serve``).

Server side: ``storage`` keeps blobs, uploads, manifests and tags on disk; ``server`` speaks the
OCI distribution HTTP API (starlette + uvicorn, imported only when a server is built);
``htpasswd`` checks Basic auth; ``serve_cli`` holds the command's flags and entry point.
"""
