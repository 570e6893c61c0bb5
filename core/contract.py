"""The names the generated dialplan and the engine share, defined once.

Asterisk and the engine meet in a handful of places: the FastAGI routes the
dialplan calls, the channel variables the engine sets for the dialplan to
read (and the dialplan sets for the engine), the user events the dialplan
sends over AMI, the AstDB family of the call journal, the contexts the
engine originates into, the ids of the channels it creates, and the folder
the prompts live in. ``dialplans/generate.py`` writes every one of them from
this module and the engine reads them from here, so a name cannot change on
one side only (``tests/unit/test_contract.py`` checks the generated
dialplan against it).
"""

from __future__ import annotations

# Prompts live under sounds/<language>/ivr/; Asterisk adds the language.
PROMPT_DIR = "ivr"


def prompt_path(prompt_id: str) -> str:
    """The sound file name Asterisk plays for a prompt id (no language, no extension)."""
    return f"{PROMPT_DIR}/{prompt_id}"
