"""Position and wait announcements to waiting callers: what they are told
(``fragments``: Arabic prompt ids, pure) and how it reaches them
(``announcer``: whispered over the music by AMI Originate, claimed once
across workers)."""
