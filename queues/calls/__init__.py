"""A call's own life, in one home: its states and transitions (``lifecycle``,
pure), its facts shared by every worker (``store``), the accounting that
turns AMI events into counted facts and call records (``accounting``), and
the dialplan's journal of ended calls read back after an AMI outage
(``journal``)."""
