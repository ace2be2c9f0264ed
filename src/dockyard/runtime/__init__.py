"""The container runtime: OCI runtime specs and the code that runs them."""
