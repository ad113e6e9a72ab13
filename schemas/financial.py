"""Financial analytics: spending patterns, category preferences, personality, peer comparison."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, Field

from schemas.common import ResponseModel
from schemas.original import BehaviorAggregate, SegmentInfo
from schemas.wallet import Money, SpendingAnalytics

TraitName = Literal["saver", "planner", "impulsive", "steady", "engaged"]
PeerMetricName = Literal[
    "spend_to_income", "savings_rate", "discretionary_share", "spending_volatility"
]
PEER_METRICS: Final[tuple[PeerMetricName, ...]] = (
    "spend_to_income",
    "savings_rate",
    "discretionary_share",
    "spending_volatility",
)


# --- spending patterns ------------------------------------------------------------------------
class CategorySpending(BaseModel):
    """One spending category's weekly average and trend."""

    category: str = Field(description="Spending category (see features.vocab.SPENDING_CATEGORIES)")
    average_weekly: float = Field(description="Average weekly spending over the window, to cents")
    trend: float | None = Field(
        description="Relative change of the last 4 weeks' average against the 8 weeks before "
        "(0.1 = +10%); null when nothing was spent in those 8 weeks"
    )


class SpendingTiming(BaseModel):
    """When money is spent over the last 4 weeks: shares (0-1) of the amount, to 3 decimals."""

    weekday_spending_ratio: float = Field(description="Share spent Monday to Friday")
    weekend_spending_ratio: float = Field(description="Share spent on Saturday and Sunday")
    morning_spending_ratio: float = Field(description="Share spent from 05:00 to 12:00")
    evening_spending_ratio: float = Field(description="Share spent from 18:00 to midnight")


class SpendingPatternsResponse(BaseModel):
    weeks: int = Field(description="Length of the window in weeks (12)")
    average_weekly_total: float = Field(description="Average weekly spending, all categories")
    categories: list[CategorySpending] = Field(
        description="Every spending category, in vocabulary order"
    )
    timing: SpendingTiming
    volatility: float = Field(
        description="Coefficient of variation of weekly spending over the window, to 3 decimals"
    )
    period_days: int = Field(description="Window of spending_analytics and behavioral_data")
    behavioral_data: BehaviorAggregate
    spending_analytics: list[SpendingAnalytics] = Field(
        description="Debits of the window per category, largest first (the original API's)"
    )
    engagement_score: float = Field(description="0-1, from the window's app events")
    behavior_diversity: int = Field(description="Number of event types in the window")
    generated_at: str | None = Field(description="When the activity aggregate was computed")


# --- category preferences ---------------------------------------------------------------------
class MerchantTotal(BaseModel):
    merchant: str = Field(description='Merchant name ("unknown" when none was recorded)')
    total: float = Field(description="Amount spent there in the window, to cents")


class CategoryPreference(BaseModel):
    category: str = Field(description="Spending category")
    share: float = Field(description="Share (0-1) of the window's spending, to 4 decimals")
    total: float = Field(description="Amount spent in the category in the window, to cents")
    top_merchants: list[MerchantTotal] = Field(
        description="Up to three merchants, largest total first"
    )


class CategoryInsight(BaseModel):
    """A category as the original API ranks it (debits of the last 30 days)."""

    category: str
    total_amount: Money
    transaction_count: int
    average_amount: Money
    percentage_of_spending: float
    behavioral_score: float


class CategoryPreferencesResponse(BaseModel):
    weeks: int = Field(description="Length of the window in weeks (12)")
    total: float = Field(description="Total spending in the window, to cents")
    categories: list[CategoryPreference] = Field(
        description="Categories with any spending, largest share first"
    )
    category_preferences: list[CategoryInsight] = Field(
        description="The original API's ranking: debits of the last 30 days per category"
    )
    top_category: CategoryInsight | None = Field(description="The first of category_preferences")
    behavioral_data: BehaviorAggregate
    analysis_period_days: int = Field(description="Window of category_preferences (30)")


# --- financial personality --------------------------------------------------------------------
class SegmentSummary(ResponseModel):
    segment_id: int
    segment_name: str
    confidence: float = Field(description="The segmentation model's posterior for this segment")


class PersonalityTraits(BaseModel):
    """Trait scores, nominally 0-1 and rounded to 3 decimals."""

    saver: float = Field(description="Savings rate against a 30% benchmark, capped at 1")
    planner: float = Field(description="Mean of budget adherence and savings consistency")
    impulsive: float = Field(description="Impulse-buying score, capped at 1")
    steady: float = Field(description="Spending consistency")
    engaged: float = Field(description="App activity (events per week / 10), capped at 1")


class PersonalityTrait(BaseModel):
    trait: str
    description: str
    score: float


class FinancialPersonalityResponse(BaseModel):
    segment: SegmentSummary | None = Field(
        description="The user's segment; null when none is stored and the model is unavailable"
    )
    traits: PersonalityTraits
    dominant_trait: TraitName = Field(description="The trait with the highest score")
    fallback: bool = Field(description="True when the segmentation model was unavailable")
    user_id: str = Field(description="The user's id (the original API's string form)")
    segment_info: SegmentInfo | None = Field(description="The segment, the original API's form")
    personality_traits: list[PersonalityTrait] = Field(
        description="Named traits (the original API's form)"
    )
    financial_metrics: dict[str, float] = Field(
        description="Volatility, impulse buying, category diversity, savings rate, stress"
    )
    behavioral_summary: BehaviorAggregate
    generated_at: str = Field(description="When the profile was computed (ISO 8601)")


# --- peer comparison --------------------------------------------------------------------------
class PeerMetric(BaseModel):
    metric: PeerMetricName = Field(description="Behavioral feature compared")
    you: float = Field(description="The user's value, to 4 decimals")
    peers_average: float = Field(description="Average over the segment's other users")


class PeerComparison(BaseModel):
    user_metrics: dict[str, float]
    peer_averages: dict[str, float]
    comparison_scores: dict[str, float] = Field(
        description="Share of peers below the user (0.5: not measured)"
    )
    peer_count: int


class PeerComparisonResponse(BaseModel):
    """The user beside similar users. With too few of them, ``message`` says so and
    ``comparison`` is null (the original API's answer for no peer data)."""

    message: str | None = Field(
        default=None, description="Why there is no comparison (too few comparable users)"
    )
    peers: int = Field(description="Number of other users in the segment averaged (at least 5)")
    metrics: list[PeerMetric] = Field(
        description="The user beside the peer average, one entry per compared feature"
    )
    segment_info: SegmentInfo | None = Field(description="The segment, the original API's form")
    comparison: PeerComparison | None = Field(description="Null without enough peers")
    insights: list[str] = Field(description="Plain-language comparison")
