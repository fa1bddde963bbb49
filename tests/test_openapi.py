"""The OpenAPI description stays true: it is valid OpenAPI 3.1, it names exactly the app's
routes (method and path), every error it promises has the JSON error shape of cloud/errors.py,
and the app serves it at /api/openapi.json to anyone."""

import re

import schemathesis
from aiohttp import web

from cloud.app import create_app
from cloud.openapi import build_description
from tests.cloud.cloud_harness import Harness, config, harness, make_config  # noqa: F401

_METHODS = {"get", "post", "put", "patch", "delete"}


def app_routes(app):
    """(METHOD, path template) of every route a handler answers. HEAD is aiohttp's own twin
    of each GET; static file folders are files, not API."""
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or isinstance(resource, web.StaticResource):
            continue
        found.add((route.method, resource.canonical))
    return found


def described_routes(description):
    return {(method.upper(), path) for path, item in description["paths"].items()
            for method in item if method in _METHODS}


def test_the_description_is_valid_openapi_3_1():
    description = build_description()
    assert description["openapi"].startswith("3.1")
    # schemathesis checks it against the OpenAPI 3.1 meta-schema (raises if it breaks it)
    schemathesis.openapi.from_dict(description).validate()


def test_every_route_is_described_and_every_description_is_a_route(tmp_path):
    app = create_app(make_config(tmp_path), settle=False)
    routes, described = app_routes(app), described_routes(build_description())
    assert routes - described == set(), "routes without a description"
    assert described - routes == set(), "described paths the app does not serve"


def test_the_route_comparison_sees_a_new_route(tmp_path):
    app = create_app(make_config(tmp_path), settle=False)
    async def delete(request):
        return web.Response()
    app.router.add_delete("/api/meters/{meterId}", delete)
    assert app_routes(app) - described_routes(build_description()) == {
        ("DELETE", "/api/meters/{meterId}")}


def test_every_path_parameter_is_declared():
    for path, item in build_description()["paths"].items():
        in_path = set(re.findall(r"{(\w+)}", path))
        for method, op in item.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, (method, path)


def test_every_error_answer_is_the_json_error_shape():
    description = build_description()
    responses = description["components"]["responses"]
    for path, item in description["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if int(status) < 400:
                    continue
                resolved = responses[answer["$ref"].rsplit("/", 1)[1]]
                schema = resolved["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    error = description["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message"]


def test_meter_operations_ask_for_all_four_signature_headers():
    description = build_description()
    schemes = description["components"]["securitySchemes"]
    signed = description["paths"]["/api/meters/{meterId}/status"]["post"]["security"]
    headers = {schemes[name]["name"] for name in signed[0]}
    assert headers == {"X-Mita-Meter", "X-Mita-Timestamp", "X-Mita-Nonce", "X-Mita-Signature"}


async def test_the_app_serves_it_without_credentials(harness):
    resp = await harness.client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == build_description()


def test_the_tariff_example_is_one_a_meter_accepts():
    # the example is what a client copies and what schemathesis sends first: it must pass
    # the firmware's own validator, as docs/protocol.md's examples do
    from cloud.tariff import validate_tariff
    examples = build_description()["components"]["schemas"]["Tariff"]["examples"]
    assert examples and all(validate_tariff(example) for example in examples)
