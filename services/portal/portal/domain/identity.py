"""Who is signed in, read from the registry's JWT.

The portal reads the token's claims only to choose what to show (menus, which cooperative a manager
lands on, the 404 for someone else's cooperative). It does not verify the signature: the token came
straight from the registry over the portal's own connection, never from the browser (the browser only
ever holds the signed session cookie), and every service verifies it again on every call.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

DINKOPDAG_ROLES = frozenset({"admin", "officer"})


class MalformedToken(ValueError):
    pass


def token_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT (unverified, see the module docstring)."""
    try:
        payload = token.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise MalformedToken("not a JWT") from exc
    if not isinstance(claims, dict):
        raise MalformedToken("JWT payload is not an object")
    return claims


@dataclass(frozen=True)
class User:
    username: str
    role: str
    subject: str = ""
    cooperative_id: str | None = None
    supplier_id: str | None = None
    kecamatan_codes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_dinkopdag(self) -> bool:
        return self.role in DINKOPDAG_ROLES

    @property
    def is_manager(self) -> bool:
        return self.role == "coop_manager"

    def may_open_cooperative(self, cooperative_id: str) -> bool:
        """Dinkopdag may open any (the services narrow an officer's scope); a manager only their own."""
        if self.is_dinkopdag:
            return True
        return (
            self.is_manager
            and self.cooperative_id is not None
            and str(self.cooperative_id) == str(cooperative_id)
        )

    def to_session(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role,
            "sub": self.subject,
            "cooperative_id": self.cooperative_id,
            "supplier_id": self.supplier_id,
            "kecamatan_codes": list(self.kecamatan_codes),
        }

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> User:
        return cls(
            username=str(data.get("username", "")),
            role=str(data.get("role", "")),
            subject=str(data.get("sub", "")),
            cooperative_id=None if data.get("cooperative_id") is None else str(data["cooperative_id"]),
            supplier_id=None if data.get("supplier_id") is None else str(data["supplier_id"]),
            kecamatan_codes=tuple(data.get("kecamatan_codes") or ()),
        )

    @classmethod
    def from_claims(cls, username: str, claims: dict[str, Any]) -> User:
        coop = claims.get("cooperative_id")
        supplier = claims.get("supplier_id")
        return cls(
            username=str(claims.get("preferred_username") or claims.get("username") or username),
            role=str(claims.get("role", "")),
            subject=str(claims.get("sub", "")),
            cooperative_id=None if coop is None else str(coop),
            supplier_id=None if supplier is None else str(supplier),
            kecamatan_codes=tuple(str(c) for c in claims.get("kecamatan_codes") or ()),
        )
