"""Citizen data for the IVR: governorates, national IDs, caller area codes.

Everything here is pure (no I/O, no clock): callers pass ``today`` and the
HMAC key in, which keeps the rules testable and the secret out of this code.
"""

from __future__ import annotations

from .area_codes import governorate_from_caller
from .governorates import (
    ABROAD,
    GOVERNORATES,
    LABEL_VALUES,
    UNKNOWN,
    Governorate,
    by_code,
    by_id,
)
from .national_id import (
    NationalIdResult,
    hash_national_id,
    mask_national_id,
    validate_national_id,
)

__all__ = [
    "ABROAD",
    "GOVERNORATES",
    "LABEL_VALUES",
    "UNKNOWN",
    "Governorate",
    "NationalIdResult",
    "by_code",
    "by_id",
    "governorate_from_caller",
    "hash_national_id",
    "mask_national_id",
    "validate_national_id",
]
