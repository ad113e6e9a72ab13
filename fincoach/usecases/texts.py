"""What the coach says for each action (ACTIONS order)."""

from __future__ import annotations

from fincoach.features.vocab import ACTIONS

ACTION_TEXTS = {
    "continue_current_behavior": "You're on track. Keep doing what you're doing this week.",
    "spending_alert": "Your spending this week is running above your usual pace. "
    "Take a look at recent purchases before the week ends.",
    "budget_suggestion": "Set a weekly budget for your largest categories and check it midweek.",
    "savings_nudge": "Move a small amount to savings today: even a little, every week, adds up.",
    "positive_reinforcement": "Great work: you're saving steadily. Keep the streak going!",
    "reduce_dining_out": "Dining out is a big share of your spending. Try cooking at home "
    "two more nights this week.",
    "review_subscriptions": "Review your subscriptions and entertainment: cancel what you "
    "haven't used this month.",
    "build_emergency_fund": "Your buffer is thin. Aim for one month of expenses in an "
    "emergency fund, starting with a small automatic transfer.",
    "pay_down_debt": "Put any extra money toward your highest-interest debt first.",
    "goal_focus": "Your goal is within reach: a fixed weekly transfer will keep it on schedule.",
}
assert set(ACTION_TEXTS) == set(ACTIONS)


def action_text(action: int) -> str:
    return ACTION_TEXTS[ACTIONS[action]]
