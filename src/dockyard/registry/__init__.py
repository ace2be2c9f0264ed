"""``dockyard registry serve``: an OCI distribution-spec registry server.

``storage`` keeps blobs, uploads, manifests and tags on disk; ``server`` speaks the HTTP API
(starlette + uvicorn, imported only when a server is built); ``htpasswd`` checks Basic auth;
``serve_cli`` holds the command-line flags and entry point.
"""
