"""Limits shared by the API schemas and the database's check constraints."""

from __future__ import annotations

from typing import Final

# Largest absolute money amount accepted anywhere: keeps NaN (which PostgreSQL sorts above every
# number) and absurd values out at the database level too, not only in the API.
MAX_AMOUNT: Final = 1_000_000_000
