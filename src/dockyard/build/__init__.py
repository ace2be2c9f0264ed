"""Building images from a Dockerfile: parsing (``dockerfile``) and shell-word expansion (``shell``)."""
