"""The OpenAPI document of ``/api/v1``: complete, served, browsable, and in charge of validation.

Every ``/api/v1`` route must be in the document (a route added without a
schema fails here, by name); the document is OpenAPI 3.1 with the token
scheme; its page renders without scripts; a request the declared models
refuse is the app's ``invalid_input`` (400, naming the field), never
spectree's own format; a response outside its declared model is the app's JSON
500, never an undocumented answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migdash.services import services_of
from migdash.store.models import Role, utcnow
from migdash.store.tokens import create_token
from migdash.store.users import create_user, get_user
from migdash.web import api
from migdash.web.openapi import API_PREFIX, ERRORS, openapi_document, undocumented_routes


@pytest.fixture
def token(app: Flask) -> str:
    with services_of(app).sessions() as session:
        create_user(session, "robot", "robot-password", Role.ADMIN)
        plaintext, _ = create_token(session, get_user(session, "robot"), "tests", utcnow())
        session.commit()
    return plaintext


@pytest.fixture
def call(client: FlaskClient, token: str) -> Callable[..., Any]:
    def send(method: str, path: str, **options: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        return client.open(f"{API_PREFIX}{path}", method=method, headers=headers, **options)

    return send


def test_every_api_route_is_in_the_document(app: Flask) -> None:
    assert undocumented_routes(app) == []
    paths = openapi_document(app)["paths"]
    assert len([op for item in paths.values() for op in item]) >= 22


def test_a_route_without_a_schema_is_named(app: Flask) -> None:
    app.add_url_rule(f"{API_PREFIX}/extra/<name>", "api.extra", lambda name: jsonify([]))
    assert undocumented_routes(app) == [f"GET {API_PREFIX}/extra/<name> (api.extra)"]


def test_the_document_is_served_as_openapi_3_1_with_the_token_scheme(
    call: Callable[..., Any], client: FlaskClient
) -> None:
    assert client.get(f"{API_PREFIX}/openapi.json").status_code == 401
    response = call("GET", "/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert document["security"] == [{"token": []}]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in document["paths"].items():
        assert path.startswith(API_PREFIX)
        for method, operation in item.items():
            for status in ERRORS:
                content = operation["responses"][str(status)]["content"]
                assert content["application/json"]["schema"] == error, (method, path, status)


def test_the_page_of_the_document_lists_every_operation_without_scripts(
    app: Flask, client: FlaskClient, login: Callable[..., FlaskClient]
) -> None:
    anonymous = client.get(f"{API_PREFIX}/docs")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login")
    page = login(Role.VIEWER).get(f"{API_PREFIX}/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts
    assert all(re.search(r'\bsrc="/static/', tag) for tag in scripts), scripts
    assert "https://" not in "".join(re.findall(r'(?:src|href)="[^"]*"', html))
    for path, item in openapi_document(app)["paths"].items():
        for method in item:
            assert f"<code>{method.upper()} {path}</code>" in html
    assert 'id="schema-ErrorBody"' in html
    assert 'id="schema-Job"' in html


JOB = {"target": "t", "action": "upgrade", "revision": "x"}
REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/jobs", {"json": {"target": 5, "action": "upgrade", "revision": "x"}}, "target"),
    ("POST", "/jobs", {"json": {"action": "upgrade", "revision": "x"}}, "target"),
    (
        "POST",
        "/jobs",
        {"json": {"target": "t", "action": "upgrade", "revision": "x\x00"}},
        "revision",
    ),
    (
        "POST",
        "/jobs",
        {"json": {"target": "t", "action": "stamp", "revision": "x" * 201}},
        "revision",
    ),
    (
        "POST",
        "/jobs",
        {"json": {"target": "t", "action": "x", "revision": "a", "purge": 1}},
        "purge",
    ),
    ("POST", "/jobs/1/reject", {"json": {"comment": ["no"]}}, "comment"),
    ("GET", "/jobs", {"query_string": {"limit": "0"}}, "limit"),
    ("GET", "/jobs/1/log", {"query_string": {"after": str(2**63)}}, "after"),
    ("GET", "/status", {"query_string": {"state": "fine"}}, "state"),
    ("GET", "/audit", {"query_string": {"since": "yesterday"}}, "since"),
    ("GET", "/projects/x/history", {"query_string": {"n": "501"}}, "n"),
    ("GET", "/schemas/diff", {"query_string": {"left": "a"}}, "right"),
]


@pytest.mark.parametrize(("method", "path", "options", "field"), REFUSED)
def test_a_request_the_models_refuse_is_invalid_input_naming_the_field(
    call: Callable[..., Any], method: str, path: str, options: dict[str, Any], field: str
) -> None:
    response = call(method, path, **options)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field
    assert field in error["message"]
    assert set(error) <= {"code", "message", "hint", "field"}


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.lists(st.none())
)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # read-only: nothing to reset
)
@given(
    body=st.dictionaries(
        st.sampled_from(["target", "action", "revision", "purge", "plan_hash", "x"]),
        VALUES,
    )
)
def test_no_json_body_crashes_or_gets_an_error_of_another_shape(
    call: Callable[..., Any], body: Any
) -> None:
    """Any object: a 4xx in the app's shape (no target exists to act on), never a 500."""
    response = call("POST", "/jobs", json=body)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert re.fullmatch(r"[a-z_]+", error["code"])
    assert set(error) <= {"code", "message", "hint", "field"}


def test_a_response_outside_its_model_is_the_apps_json_500(
    call: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.approvals, "awaiting", lambda session: [7])
    monkeypatch.setattr(api, "job_json", lambda job: {"id": job, "undocumented": True})
    response = call("GET", "/approvals")
    assert response.status_code == 500
    assert response.get_json() == {
        "error": {
            "code": "internal",
            "message": "Something went wrong on the server; nothing was changed by this request.",
            "hint": "",
        }
    }
