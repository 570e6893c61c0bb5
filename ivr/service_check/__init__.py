"""The service check: after a case is resolved, did the citizen get the service?

``flow``: the call's questions (FastAGI route ``service_check``).
``dialler``: the engine's periodic job that places the calls (or asks the
callback machinery for an agent's call) and ends the check when every
attempt went unanswered. docs/cases.md, "Did you get the service?".
"""
