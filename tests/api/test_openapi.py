"""The OpenAPI document: every route names its response model and documents its 422.

Built with ``app.openapi()``: no database, no lifespan, no models.
"""

from __future__ import annotations

from typing import Any

import pytest

from fincoach.http.app import create_app
from schemas.ops import HealthResponse, ModelsResponse
from schemas.problem import PROBLEM_MEDIA_TYPE
from tests.conftest import test_settings

# (method, path) -> why its 2xx body is not a named model. Each entry must still be needed:
# once a route gets a response model, delete its line here.
NO_MODEL_EXCEPTIONS: dict[tuple[str, str], str] = {}

# (method, path) -> why its 422 is documented as FastAPI's HTTPValidationError although the
# body sent is a Problem (add ``responses=problem_responses(422)``, then delete the line).
PROBLEM_422_EXCEPTIONS: dict[tuple[str, str], str] = {}

# Statuses whose responses have no body by definition.
BODYLESS = {"204", "205", "304"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(test_settings("sqlite+aiosqlite:///:memory:")).openapi()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    ]


def _component(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix), ref
    return spec["components"]["schemas"][ref.removeprefix(prefix)]


def _model_problems(spec: dict[str, Any], op: dict[str, Any]) -> list[str]:
    """Why this operation's 2xx responses do not name a model (empty: they all do)."""
    success = {s: r for s, r in op["responses"].items() if s.startswith("2")}
    if not success:
        return ["no 2xx response"]
    problems = []
    for status, response in success.items():
        content = response.get("content")
        if not content:
            if status not in BODYLESS:
                problems.append(f"{status} documents no body")
            continue
        for media, body in content.items():
            schema = body.get("schema", {})
            ref = schema.get("$ref") or (
                schema.get("items", {}).get("$ref") if schema.get("type") == "array" else None
            )
            if ref is None:
                problems.append(f"{status} {media} is not a $ref (or array of $ref): {schema}")
            elif "properties" not in _component(spec, ref):
                # A $ref to a RootModel[dict[str, Any]] would dodge the rule above.
                problems.append(f"{status} {media} refers to {ref}, an object without fields")
    return problems


def test_openapi_every_route_has_a_response_model(spec: dict[str, Any]) -> None:
    missing = {
        (method, path): problems
        for method, path, op in _operations(spec)
        if (problems := _model_problems(spec, op)) and (method, path) not in NO_MODEL_EXCEPTIONS
    }
    assert not missing, f"routes without a response model: {missing}"


def test_openapi_model_exceptions_are_still_needed(spec: dict[str, Any]) -> None:
    operations = {(method, path): op for method, path, op in _operations(spec)}
    for key, reason in NO_MODEL_EXCEPTIONS.items():
        assert reason, f"{key}: an exception needs a reason"
        assert key in operations, f"{key} is no longer a route: drop its exception"
        assert _model_problems(spec, operations[key]), f"{key} has a model now: drop its exception"


def _documents_problem(response: dict[str, Any]) -> bool:
    """Problem media type, and the Problem schema (which the ``problem_responses`` helper
    leaves under application/json: FastAPI puts a ``model`` there)."""
    content = response.get("content", {})
    return PROBLEM_MEDIA_TYPE in content and any(
        body.get("schema", {}).get("$ref") == "#/components/schemas/Problem"
        for body in content.values()
    )


def _takes_input(op: dict[str, Any]) -> bool:
    return "requestBody" in op or any(
        p["in"] in ("path", "query") for p in op.get("parameters", [])
    )


def test_openapi_routes_with_inputs_document_422(spec: dict[str, Any]) -> None:
    missing = [
        (method, path)
        for method, path, op in _operations(spec)
        if _takes_input(op) and "422" not in op["responses"]
    ]
    assert not missing, f"routes with path/query parameters or a body but no 422: {missing}"


def test_openapi_422_documents_the_problem_body(spec: dict[str, Any]) -> None:
    """A 422 body is a Problem with ``errors`` (api.problems), not FastAPI's HTTPValidationError."""
    wrong = [
        (method, path)
        for method, path, op in _operations(spec)
        if "422" in op["responses"]
        and not _documents_problem(op["responses"]["422"])
        and (method, path) not in PROBLEM_422_EXCEPTIONS
    ]
    assert not wrong, f"routes documenting 422 without the Problem schema: {wrong}"
    operations = {(method, path): op for method, path, op in _operations(spec)}
    for key in PROBLEM_422_EXCEPTIONS:
        assert key in operations, f"{key} is no longer a route: drop its exception"
        assert not _documents_problem(operations[key]["responses"].get("422", {})), (
            f"{key} documents its 422 problem now: drop its exception"
        )


def _props(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]["properties"]


def _ref_of(spec: dict[str, Any], method: str, path: str) -> str:
    schema = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    return schema["schema"]["$ref"].removeprefix("#/components/schemas/")


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/financial/spending-patterns", "SpendingPatternsResponse"),
        ("/financial/category-preferences", "CategoryPreferencesResponse"),
        ("/financial/financial-personality", "FinancialPersonalityResponse"),
        ("/financial/peer-comparison", "PeerComparisonResponse"),
        ("/models", "ModelsResponse"),
        ("/health", "HealthResponse"),
    ],
)
def test_openapi_financial_and_ops_routes_name_their_model(
    spec: dict[str, Any], path: str, model: str
) -> None:
    assert _ref_of(spec, "get", path) == model
    assert all(p.get("description") for p in _props(spec, model).values() if "$ref" not in p)


def test_openapi_financial_schemas_have_the_named_fields(spec: dict[str, Any]) -> None:
    # This backend's fields, then the original FinCoach API's (a superset: none renamed).
    assert list(_props(spec, "SpendingPatternsResponse")) == [
        "weeks",
        "average_weekly_total",
        "categories",
        "timing",
        "volatility",
        "period_days",
        "behavioral_data",
        "spending_analytics",
        "engagement_score",
        "behavior_diversity",
        "generated_at",
    ]
    assert set(_props(spec, "CategorySpending")) == {"category", "average_weekly", "trend"}
    assert set(_props(spec, "SpendingTiming")) == {
        "weekday_spending_ratio",
        "weekend_spending_ratio",
        "morning_spending_ratio",
        "evening_spending_ratio",
    }
    assert list(_props(spec, "CategoryPreferencesResponse")) == [
        "weeks",
        "total",
        "categories",
        "category_preferences",
        "top_category",
        "behavioral_data",
        "analysis_period_days",
    ]
    assert set(_props(spec, "CategoryPreference")) == {
        "category",
        "share",
        "total",
        "top_merchants",
    }
    assert set(_props(spec, "MerchantTotal")) == {"merchant", "total"}

    traits = ["saver", "planner", "impulsive", "steady", "engaged"]
    personality = _props(spec, "FinancialPersonalityResponse")
    assert list(personality)[:4] == ["segment", "traits", "dominant_trait", "fallback"]
    assert {"user_id", "segment_info", "personality_traits", "financial_metrics"} <= set(
        personality
    )
    assert personality["dominant_trait"]["enum"] == traits
    assert personality["fallback"]["type"] == "boolean"
    assert personality["traits"]["$ref"].endswith("/PersonalityTraits")
    trait_props = _props(spec, "PersonalityTraits")
    assert list(trait_props) == traits
    assert {p["type"] for p in trait_props.values()} == {"number"}
    assert set(_props(spec, "SegmentSummary")) == {"segment_id", "segment_name", "confidence"}

    peers = _props(spec, "PeerComparisonResponse")
    assert peers["peers"]["type"] == "integer"
    assert peers["metrics"]["items"]["$ref"].endswith("/PeerMetric")
    assert list(_props(spec, "PeerMetric")) == ["metric", "you", "peers_average"]


def test_openapi_ops_schemas_have_the_named_fields(spec: dict[str, Any]) -> None:
    deployments = _props(spec, "ModelsResponse")["deployments"]["additionalProperties"]
    shapes = deployments["anyOf"]
    assert {"additionalProperties": {"$ref": "#/components/schemas/ModelSlotInfo"}}.items() <= (
        shapes[0].items()
    )
    assert shapes[1] == {"$ref": "#/components/schemas/DeploymentError"}
    assert list(_props(spec, "ModelSlotInfo")) == ["version", "last_swap"]
    assert list(_props(spec, "SwapResult")) == ["name", "requested", "active", "ok", "error", "at"]
    assert list(_props(spec, "DeploymentError")) == ["error"]

    health = _props(spec, "HealthResponse")
    assert list(health) == ["status", "database", "models", "bandit", "version", "jobs"]
    assert health["status"]["enum"] == ["ok", "degraded"]
    assert health["database"]["const"] == "ok"
    assert health["models"]["additionalProperties"]["enum"] == ["ok", "unavailable"]
    # Null for an anonymous caller (liveness only: issue 14).
    assert health["bandit"]["anyOf"][0]["enum"] == ["ok", "unavailable"]
    assert health["bandit"]["anyOf"][1] == {"type": "null"}
    assert _documents_problem(spec["paths"]["/health"]["get"]["responses"]["503"])


def _swap(name: str, ok: bool) -> dict[str, Any]:
    return {
        "name": name,
        "requested": None,
        "active": "v1" if ok else None,
        "ok": ok,
        "error": None if ok else f"no model named {name!r}",
        "at": "2026-01-05T10:00:00.123456+00:00",
    }


def test_ops_models_keep_the_shapes_the_services_report() -> None:
    """The models re-serialize what the services return unchanged (same keys and values)."""
    deployments = {
        "SegmentationDeployment": {
            "segmentation": {"version": "v1", "last_swap": _swap("segmentation", True)}
        },
        "ForecastingDeployment": {
            "forecast": {"version": None, "last_swap": _swap("forecast", False)},
            "goal_probability": {"version": "v2", "last_swap": None},
        },
        "RecommenderDeployment": {"error": "TimeoutError: "},
    }
    models = ModelsResponse.model_validate({"deployments": deployments})
    assert models.model_dump(mode="json") == {"deployments": deployments}
    health = {
        "status": "degraded",
        "database": "ok",
        "models": {"SegmentationDeployment": "ok", "RecommenderDeployment": "unavailable"},
        "bandit": "ok",
        "version": "0.1.0",
        "jobs": {
            "segments": {
                "last_status": "ok",
                "last_finished_at": "2026-11-24T12:00:00Z",
                "next_run_at": "2026-11-25T12:00:00Z",
            }
        },
    }
    assert HealthResponse.model_validate(health).model_dump(mode="json") == health
