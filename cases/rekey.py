"""Re-keying the case database after a key rotation (``ivr secrets rekey``).

Two things stored in a case depend on a rotatable key and can be redone
offline, because the number itself is kept (encrypted):

* ``number_encrypted`` (the ``fernet:cases`` key): decrypted with any key of
  the ring, encrypted again with the current one (Fernet's own rotation: the
  token keeps its time);
* ``number_hash`` (the ``hmac:caller_number`` key): computed again from the
  decrypted number with the current key.

``national_id_hash`` cannot: the ID is not kept anywhere, only its hash. A
case's ID hash is re-keyed when the citizen calls again and types the ID
(``CaseStore.rekey_citizen``, from the desktop's pop).

The walk goes through every case that keeps a number, by id, in batches;
each batch is one transaction of conditional updates (a row changed
meanwhile is left for the next run). Idempotent: a row already in the
current key's form is counted and left alone, so a second run writes
nothing, and an interrupted run is resumed by running it again (or from the
last id it reported, ``after_id``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from cryptography.fernet import InvalidToken

from core.privacy import NumberCipher

from .store import MAX_PAGE, CaseStore

log = logging.getLogger(__name__)

BATCH = MAX_PAGE


@dataclass
class RekeyCounts:
    """What a walk found among ``rows`` cases keeping a number: ``rewritten``
    in the current key's form now; ``current`` already so; ``stale`` (a dry
    run, nothing written) not in the current key's form but readable, what a
    real run rewrites; ``unreadable`` numbers no key of the ring decrypts
    (left as they are); ``no_number`` rows with a number hash but no number
    kept (re-keyed only when that caller calls again); ``changed_meanwhile``
    rows another writer changed between the read and the write (the next run
    takes them). ``last_id``: where the walk got to."""

    rows: int = 0
    rewritten: int = 0
    current: int = 0
    stale: int = 0
    unreadable: int = 0
    no_number: int = 0
    changed_meanwhile: int = 0
    last_id: int = 0
    unreadable_references: list[str] = field(default_factory=list)


Progress = Callable[[RekeyCounts], None]


def reencrypt_numbers(store: CaseStore, cipher: NumberCipher, *, after_id: int = 0, batch: int = BATCH,
                      dry_run: bool = False, progress: Progress | None = None) -> RekeyCounts:
    """Every number encrypted with a retired key of ``cipher``'s ring,
    encrypted with its current key. ``dry_run``: counted (``stale``), not
    written: the numbers that still need a retired key."""

    def one(row: dict, counts: RekeyCounts) -> dict | None:
        token = row["number_encrypted"]
        if token is None:
            return None     # a hash without a number: nothing encrypted
        if cipher.is_current(token):
            counts.current += 1
            return None
        try:
            return {"number_encrypted": cipher.reencrypt(token)}
        except InvalidToken:
            _unreadable(row, counts)
            return None

    return _walk(store, one, ("number_encrypted",), after_id=after_id, batch=batch, dry_run=dry_run,
                 progress=progress)


def rehash_numbers(store: CaseStore, cipher: NumberCipher, number_hash: Callable[[str], str | None], *,
                   after_id: int = 0, batch: int = BATCH, dry_run: bool = False,
                   progress: Progress | None = None) -> RekeyCounts:
    """Every ``number_hash`` computed again from the decrypted number with
    the current caller-number key (``number_hash``). ``dry_run``: the hashes
    of an older key counted (``stale``), not written."""

    def one(row: dict, counts: RekeyCounts) -> dict | None:
        if row["number_encrypted"] is None:
            counts.no_number += 1
            return None
        try:
            number = cipher.decrypt(row["number_encrypted"])
        except InvalidToken:
            _unreadable(row, counts)
            return None
        wanted = number_hash(number)
        if wanted == row["number_hash"]:
            counts.current += 1
            return None
        return {"number_hash": wanted}

    return _walk(store, one, ("number_hash", "number_encrypted"), after_id=after_id, batch=batch,
                 dry_run=dry_run, progress=progress)


def _unreadable(row: dict, counts: RekeyCounts) -> None:
    counts.unreadable += 1
    if len(counts.unreadable_references) < 20:
        counts.unreadable_references.append(row["reference"])


def _walk(store: CaseStore, one: Callable[[dict, RekeyCounts], dict | None], guarded: tuple[str, ...], *,
          after_id: int, batch: int, dry_run: bool, progress: Progress | None) -> RekeyCounts:
    """``one(row, counts)`` for every case keeping a number, id after id; what
    it returns is written (one transaction a batch) if the ``guarded``
    columns still hold what was read."""
    counts = RekeyCounts(last_id=after_id)
    while True:
        rows = store.identities(after_id=counts.last_id, limit=batch)
        if not rows:
            return counts
        changes = []
        for row in rows:
            counts.rows += 1
            new = one(row, counts)
            if new:
                changes.append((row["id"], {k: row[k] for k in guarded}, new))
        if dry_run:
            counts.stale += len(changes)
        elif changes:
            done = store.rewrite_identity(changes)
            counts.rewritten += done
            counts.changed_meanwhile += len(changes) - done
        counts.last_id = rows[-1]["id"]
        if progress is not None:
            progress(counts)
