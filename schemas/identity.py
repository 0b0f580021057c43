"""Our user id for a WHOOP member: a name-based UUID, so a returning member keeps the same id.

The id is derived, not allocated, so the ingest edge can key a webhook by our user id without a
database lookup, and a member who disconnects and reconnects comes back as the same user. It is
not a secret: access to a user's data is granted by that user's API token, never by the id.
"""

from __future__ import annotations

import uuid

__all__ = ["USER_NAMESPACE", "user_id_for_whoop_member"]

USER_NAMESPACE = uuid.UUID("6f1d2c8e-4a57-5b9e-9d0c-77a1e3b52f10")


def user_id_for_whoop_member(whoop_user_id: int) -> str:
    """The stable user id of the WHOOP member ``whoop_user_id``."""
    if whoop_user_id < 0:
        raise ValueError("WHOOP user ids are non-negative")
    return str(uuid.uuid5(USER_NAMESPACE, f"whoop:{whoop_user_id}"))
