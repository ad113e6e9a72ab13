"""The authenticated user and their profile."""

from __future__ import annotations

from fastapi import APIRouter

from fincoach.db.queries.users import get_profile, update_profile
from fincoach.http.deps import CurrentUser, SessionDep
from schemas.problem import AUTHENTICATED, problem_responses
from schemas.users import ProfileResponse, ProfileUpdateRequest, UserResponse

router = APIRouter(prefix="/users", tags=["users"], responses=problem_responses(*AUTHENTICATED))


@router.get("/me", response_model=UserResponse)
async def read_me(user: CurrentUser) -> UserResponse:
    return UserResponse.model_validate(user)


@router.get("/me/profile", response_model=ProfileResponse)
async def read_profile(user: CurrentUser, session: SessionDep) -> ProfileResponse:
    profile = await get_profile(session, user.id)
    await session.commit()
    return ProfileResponse.model_validate(profile)


@router.patch("/me/profile", response_model=ProfileResponse, responses=problem_responses(422))
async def update_my_profile(
    body: ProfileUpdateRequest, user: CurrentUser, session: SessionDep
) -> ProfileResponse:
    profile = await update_profile(session, user.id, body.model_dump(exclude_unset=True))
    await session.commit()
    return ProfileResponse.model_validate(profile)
