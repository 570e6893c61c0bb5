"""Errors every layer may raise or catch."""

from __future__ import annotations


class Unreachable(Exception):
    """A service a tool needs (Asterisk's AMI, Redis) did not answer; the message says what to do."""
