"""AMI, in one home: typed events parsed at the edge (``events``), typed
actions and replies (``actions``), both without I/O, and the connection
that moves them (``connection``, the only importer of panoramisk).
Recorded sessions of the real Asterisk (``recording``) are the test data."""

from .actions import Action, Reply
from .events import AmiEvent, parse_event

__all__ = ["Action", "AmiEvent", "Reply", "parse_event"]
