"""OCI objects: references, manifests, indexes, configs, media types, archives."""
