"""The authenticated user and their profile."""

from __future__ import annotations

from fastapi import APIRouter

from fincoach.http.deps import CurrentUser, SessionDep
from fincoach.usecases import accounts
from schemas.problem import AUTHENTICATED, problem_responses
from schemas.users import ProfileResponse, ProfileUpdateRequest, UserResponse

router = APIRouter(prefix="/users", tags=["users"], responses=problem_responses(*AUTHENTICATED))


@router.get("/me", response_model=UserResponse)
async def read_me(user: CurrentUser) -> UserResponse:
    return UserResponse.model_validate(user)


@router.get("/me/profile", response_model=ProfileResponse)
async def read_profile(user: CurrentUser, session: SessionDep) -> ProfileResponse:
    return ProfileResponse.model_validate(await accounts.profile(session, user.id))


@router.patch("/me/profile", response_model=ProfileResponse, responses=problem_responses(422))
async def update_my_profile(
    body: ProfileUpdateRequest, user: CurrentUser, session: SessionDep
) -> ProfileResponse:
    changes = body.model_dump(exclude_unset=True)
    return ProfileResponse.model_validate(await accounts.update_profile(session, user.id, changes))
