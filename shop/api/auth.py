"""Registration, login (token issue) and logout (token revocation)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, request

from shop.api.policy import authenticated, current_user
from shop.api.schemas import Blueprint, InputSchema
from shop.api.users import UserSchema
from shop.extensions import limiter
from shop.models import User
from shop.security import login_throttle
from shop.services import accounts

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Registration and bearer tokens")


class CredentialsSchema(InputSchema):
    email = ma.fields.Email(required=True, validate=ma.validate.Length(max=320))
    password = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=128), load_only=True)

    @ma.pre_load
    def strip_email(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            return data | {"email": data["email"].strip()}
        return data


class RegistrationSchema(CredentialsSchema):
    password = ma.fields.String(required=True, validate=ma.validate.Length(min=8, max=128), load_only=True)
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))

    @ma.pre_load
    def refuse_role(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and "role" in data:
            raise ma.ValidationError(
                {"role": ["Roles are assigned by staff; registration always makes a customer account."]}
            )
        return data

    @ma.post_load
    def strip_name(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["name"] = data["name"].strip()
        if not data["name"]:
            raise ma.ValidationError({"name": ["Must not be blank."]})
        return data


class TokenSchema(ma.Schema):
    token = ma.fields.String(metadata={"description": "send as 'Authorization: Bearer <token>'"})
    expires_at = ma.fields.AwareDateTime(format="iso")
    user = ma.fields.Nested(UserSchema)


def _email_in_body() -> str:
    """Rate-limit key: the email a login or registration is for, whatever address it comes from."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"email:{email.strip().lower()}" if isinstance(email, str) else "email:"


@blp.post("/register")
@limiter.limit(lambda: current_app.config["REGISTER_LIMIT_PER_ADDRESS"], scope="register-address")
@limiter.limit(lambda: current_app.config["REGISTER_LIMIT_PER_EMAIL"], key_func=_email_in_body, scope="register-email")
@blp.arguments(RegistrationSchema())
@blp.response(201, UserSchema)
@blp.alt_response(409, description="Email already registered")
def register(registration: dict[str, Any]) -> User:
    """Make a customer account."""
    return accounts.register_user(registration["email"], registration["password"], registration["name"])


@blp.post("/tokens")
@blp.arguments(CredentialsSchema())
@blp.response(201, TokenSchema)
@blp.alt_response(401, description="Wrong email or password (one message for both)")
@blp.alt_response(429, description="Too many sign-in attempts from this address or for this account")
def create_token(credentials: dict[str, Any]) -> accounts.IssuedToken:
    """Log in: trade an email and password for a bearer token."""
    email, password = credentials["email"], credentials["password"]
    return login_throttle.attempt(
        email, lambda: accounts.issue_token(email, password), refused=accounts.InvalidCredentials
    )


@blp.delete("/tokens/current")
@authenticated()
@blp.response(204)
def revoke_current_token() -> None:
    """Log out: the token stops working at once."""
    accounts.revoke_token(current_user().token_id)
