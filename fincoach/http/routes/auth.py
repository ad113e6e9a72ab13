"""Registration and the OAuth2 password flow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from fincoach.errors import InvalidCredentials
from fincoach.http.deps import SessionDep, SettingsDep
from fincoach.http.ratelimit import check_login_allowed, limit_client, login_failed, login_succeeded
from fincoach.usecases import accounts
from fincoach.usecases.passwords import create_access_token
from schemas.problem import problem_responses
from schemas.users import RegisterRequest, TokenResponse, UserResponse

# Anonymous endpoints: limited per client address (fincoach/http/ratelimit.py).
router = APIRouter(
    prefix="/auth",
    tags=["auth"],
    dependencies=[Depends(limit_client)],
    responses=problem_responses(429, 503),
)


@router.post(
    "/register",
    status_code=201,
    response_model=UserResponse,
    responses=problem_responses(409, 422),
)
async def register_user(
    body: RegisterRequest, session: SessionDep, settings: SettingsDep
) -> UserResponse:
    user = await accounts.register(
        session, settings, email=body.email, password=body.password, full_name=body.full_name
    )
    return UserResponse.model_validate(user)


@router.post("/token", response_model=TokenResponse, responses=problem_responses(401, 422))
async def create_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> TokenResponse:
    """Exchange e-mail (as `username`) and password for a bearer token. Repeated failures for
    one e-mail or from one client are answered 429 for a while, known e-mail or not."""
    check_login_allowed(request, form.username)
    user = await accounts.authenticate(session, settings, form.username, form.password)
    if user is None:
        login_failed(request, form.username)
        raise InvalidCredentials("Incorrect e-mail or password")
    login_succeeded(request, form.username)
    return TokenResponse(
        access_token=create_access_token(user.id, settings),
        expires_in=settings.token_ttl_minutes * 60,
    )
