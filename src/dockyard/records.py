"""Record classes: what ``@dataclass`` gives (repr, equality, hashing, immutability) without its cost.

``@dataclass`` builds each class's methods with ``exec`` at import (about 1 ms a class, on every command)
and imports ``inspect``; start-up time is a feature, so the value types on the hot path use these.
This module imports nothing from Dockyard, so every layer may use it (like ``errors`` and ``digest``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


class Record:
    """What ``@dataclass(frozen=True)`` gave these classes, less ``__init__``: repr, equality, hash and
    immutability over ``_fields``. Plain classes, since ``@dataclass`` builds its methods with ``exec``
    at import (about 1 ms a class, on every command) and pulls in ``inspect``.
    """

    _fields: tuple[str, ...] = ()

    def _astuple(self) -> tuple[Any, ...]:
        d = self.__dict__
        return tuple(d[n] for n in self._fields)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(f"{n}={self.__dict__[n]!r}" for n in self._fields) + ")"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field '{name}'")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}'")


class MutableRecord(Record):
    """``@dataclass`` (not frozen): fields may be assigned, and instances are unhashable."""

    __hash__ = None  # type: ignore[assignment]
    __setattr__ = object.__setattr__  # type: ignore[assignment]
    __delattr__ = object.__delattr__


class LazyPath:
    """A ``pathlib.Path`` view of a ``str`` attribute, made on first access and then cached.

    The run path works on strings (``pathlib`` pulls in ``re``, ``urllib.parse`` and ``ipaddress``: ~6 ms
    of every ``dockyard run``), while cold callers (build, commit, save/load...) keep their ``Path``
    attributes: ``root = LazyPath("root_dir")`` imports ``pathlib`` only when ``.root`` is read.
    A non-data descriptor, so the cached value in the instance's ``__dict__`` wins from then on.
    """

    def __init__(self, attr: str) -> None:
        self.attr = attr
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Path:
        if obj is None:
            return self  # type: ignore[return-value]
        from pathlib import Path

        p = Path(getattr(obj, self.attr))
        obj.__dict__[self.name] = p
        return p
