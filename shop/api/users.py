"""The signed-in user."""

from __future__ import annotations

import marshmallow as ma

from shop.api.policy import authenticated, current_user
from shop.api.schemas import Blueprint
from shop.models import Role
from shop.security.principal import Principal

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="Accounts")


class UserSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    email = ma.fields.String()
    name = ma.fields.String()
    role = ma.fields.String(metadata={"enum": [role.value for role in Role]})
    created_at = ma.fields.AwareDateTime(format="iso")


@blp.get("/me")
@authenticated()
@blp.response(200, UserSchema)
def me() -> Principal:
    """The account the bearer token belongs to."""
    return current_user()
