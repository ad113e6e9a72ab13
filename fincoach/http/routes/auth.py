"""Accounts: the original FinCoach auth API (register, JSON login, me, refresh, profile, logout,
account deletion) and the OAuth2 password flow (``/auth/token``, for OAuth2 clients and the
docs' Authorize button)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from fincoach.db.tables import User
from fincoach.errors import InvalidCredentials
from fincoach.http.deps import ContextDep, CurrentUser, SessionDep, SettingsDep
from fincoach.http.ratelimit import (
    check_login_allowed,
    limit_client,
    login_failed,
    login_slot,
    login_succeeded,
)
from fincoach.usecases import accounts
from schemas.problem import AUTHENTICATED, problem_responses
from schemas.users import (
    AccountUser,
    AuthTokenResponse,
    LoginRequest,
    MeResponse,
    MessageResponse,
    OriginalProfileUpdate,
    RegisterRequest,
    RegisterResponse,
    TokenResponse,
    normalize_email,
)

# Anonymous endpoints: limited per client address (fincoach/http/ratelimit.py).
router = APIRouter(
    prefix="/auth",
    tags=["auth"],
    dependencies=[Depends(limit_client)],
    responses=problem_responses(429, 503),
)
# The same prefix, for the signed-in user (the token is what limits them).
account_router = APIRouter(
    prefix="/auth", tags=["auth"], responses=problem_responses(*AUTHENTICATED)
)


def account_user(user: User) -> AccountUser:
    """A user in the original API's shape (its id as a string)."""
    return AccountUser(
        id=str(user.id),
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        created_at=user.created_at,
        is_active=user.is_active,
    )


def token_answer(token: accounts.IssuedToken) -> AuthTokenResponse:
    return AuthTokenResponse(
        access_token=token.access_token,
        expires_in=token.expires_in,
        user=account_user(token.user),
    )


@router.post(
    "/register",
    status_code=201,
    response_model=RegisterResponse,
    responses=problem_responses(400, 422),
)
async def register_user(
    body: RegisterRequest, session: SessionDep, settings: SettingsDep
) -> RegisterResponse:
    """Create an account (its wallet starts at 1,000) and sign in: the token and the user. An
    e-mail that has an account is a 400."""
    user = await accounts.register(
        session,
        settings,
        email=body.email,
        password=body.password,
        names=body.names(),
        date_of_birth=body.date_of_birth,
    )
    return RegisterResponse(
        **token_answer(accounts.token_for(user, settings)).model_dump(),
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        is_active=user.is_active,
        created_at=user.created_at,
    )


async def _login(
    request: Request, session: SessionDep, settings: SettingsDep, email: str, password: str
) -> accounts.IssuedToken:
    """Check the password (throttled per e-mail and client) and issue a token."""
    email = normalize_email(email)
    check_login_allowed(request, email)
    with login_slot(request):
        user = await accounts.authenticate(session, settings, email, password)
    if user is None:
        login_failed(request, email)
        raise InvalidCredentials("Invalid email or password")
    login_succeeded(request, email)
    return accounts.token_for(user, settings)


@router.post("/login", response_model=AuthTokenResponse, responses=problem_responses(401, 422))
async def login(
    body: LoginRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> AuthTokenResponse:
    """Sign in with e-mail and password (JSON): the token and the user. Repeated failures for
    one e-mail or from one client are answered 429 for a while, known e-mail or not."""
    return token_answer(await _login(request, session, settings, body.email, body.password))


@router.post("/token", response_model=TokenResponse, responses=problem_responses(401, 422))
async def create_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> TokenResponse:
    """Exchange e-mail (as `username`) and password for a bearer token. Repeated failures for
    one e-mail or from one client are answered 429 for a while, known e-mail or not."""
    token = await _login(request, session, settings, form.username, form.password)
    return TokenResponse(access_token=token.access_token, expires_in=token.expires_in)


@account_router.get("/me", response_model=MeResponse)
async def read_current_user(user: CurrentUser) -> MeResponse:
    """The signed-in user (the original API's shape; ``/users/me`` is this backend's)."""
    return MeResponse(**account_user(user).model_dump(), full_name=user.full_name)


@account_router.post("/refresh", response_model=AuthTokenResponse)
async def refresh_token(user: CurrentUser, settings: SettingsDep) -> AuthTokenResponse:
    """A new token for the signed-in user."""
    return token_answer(accounts.token_for(user, settings))


@account_router.post("/logout", response_model=MessageResponse)
async def logout(user: CurrentUser) -> MessageResponse:
    """Sign out. Tokens are not stored: the client discards its token, which expires on its
    own (FINCOACH_TOKEN_TTL_MINUTES)."""
    return MessageResponse(message="Successfully logged out")


@account_router.put("/profile", response_model=MessageResponse, responses=problem_responses(422))
async def update_account_profile(
    body: OriginalProfileUpdate, user: CurrentUser, session: SessionDep
) -> MessageResponse:
    """Change the profile fields sent (income, savings goal, risk tolerance, goals)."""
    await accounts.update_profile(session, user.id, body.model_dump(exclude_unset=True))
    return MessageResponse(message="Profile updated successfully")


@account_router.delete("/account", response_model=MessageResponse)
async def delete_account(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> MessageResponse:
    """Delete the account and everything it owns (profile, wallet, transactions, goals,
    events, recommendations, feedback, segment, cached predictions), in one transaction."""
    await accounts.delete_account(ctx, session, user.id)
    return MessageResponse(message="Account deleted successfully")
