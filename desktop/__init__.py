"""The agents' desktop: call pops, cases, pause and resume in the browser (docs/desktop.md)."""
