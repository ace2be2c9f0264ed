"""The ``Runtime`` protocol shared by ``BuiltinRuntime`` and ``ExternalRuntime``.

Kept apart from the implementations because ``typing`` costs milliseconds to import and the runtime's
hot path (``dockyard-runtime create/start/run``) must not pay for it.
"""

from __future__ import annotations

import os
from typing import Protocol

from .state import OCIState


class Runtime(Protocol):
    """An OCI runtime, driven the way runc is driven; see ``dockyard.runtime`` for the contract."""

    def create(
        self,
        id: str,
        bundle: str | os.PathLike[str],
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        no_pivot: bool = False,
    ) -> int: ...

    def start(self, id: str) -> None: ...

    def state(self, id: str) -> OCIState: ...

    def kill(self, id: str, sig: int | str = "SIGTERM", *, all: bool = False) -> None: ...

    def delete(self, id: str, *, force: bool = False) -> None: ...

    def exec(
        self,
        id: str,
        process: dict[str, object],
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        detach: bool = True,
    ) -> int: ...

    def pause(self, id: str) -> None: ...

    def resume(self, id: str) -> None: ...

    def list(self) -> list[OCIState]: ...
