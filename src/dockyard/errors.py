"""One error hierarchy for all of Dockyard.

Every error a user can cause is a ``DockyardError``: the CLI prints ``str(err)`` on one line
(prefixed with ``Error response from daemon:``-free plain words) and exits with ``err.exit_code``.
Anything that is not a ``DockyardError`` is a bug and shows a traceback only with ``--debug``.

    DockyardError (exit 1)
    ├── InvalidArgument            bad flag value, bad reference, bad spec string
    │   └── InvalidReference
    ├── NotFound
    │   ├── ImageNotFound
    │   ├── ContainerNotFound
    │   └── BlobNotFound
    ├── Conflict                   name in use, image in use, ambiguous prefix, wrong state
    ├── CorruptData                digest/size mismatch, unreadable tar, bad manifest
    │   └── UnsafeArchive          a layer entry that would escape its directory
    ├── RegistryError              HTTP API failures (auth, 4xx/5xx, network)
    │   └── AuthError
    ├── BuildError                 a Dockerfile error or failed step
    └── RuntimeFailure             namespaces, mounts, exec of the container's process
        ├── CommandNotExecutable   exit 126
        └── CommandNotFound        exit 127

This module imports nothing from Dockyard so that every layer may use it.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base for every error caused by input or environment, never by a bug."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidArgument(DockyardError):
    pass


class InvalidReference(InvalidArgument):
    pass


class NotFound(DockyardError):
    pass


class ImageNotFound(NotFound):
    pass


class ContainerNotFound(NotFound):
    pass


class BlobNotFound(NotFound):
    pass


class Conflict(DockyardError):
    pass


class CorruptData(DockyardError):
    pass


class UnsafeArchive(CorruptData):
    pass


class RegistryError(DockyardError):
    pass


class AuthError(RegistryError):
    pass


class BuildError(DockyardError):
    pass


class RuntimeFailure(DockyardError):
    """The runtime could not create or start the container (Docker exits 125 for this in ``run``)."""

    exit_code = 125


class CommandNotExecutable(RuntimeFailure):
    exit_code = 126


class CommandNotFound(RuntimeFailure):
    exit_code = 127
