"""The supervisors' live Arabic wallboard (``WallboardServer``)."""

from .server import WallboardServer

__all__ = ["WallboardServer"]
