import importlib.util
import json
import re

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def schema(api) -> dict:
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def refs(node):
    """Every $ref in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(document: dict, ref: str):
    assert ref.startswith("#/"), f"external $ref {ref}"
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_it_serves_an_openapi_3_document(schema):
    assert re.fullmatch(r"3\.\d+\.\d+", schema["openapi"])
    assert schema["info"]["title"] == "Maraudes API"
    assert isinstance(schema["info"]["version"], str)
    assert isinstance(schema["paths"], dict)


def test_it_serves_yaml_by_default(api):
    response = api.get("/api/schema/")

    assert response.status_code == 200
    assert yaml.safe_load(response.content)["openapi"].startswith("3.")


@pytest.mark.skipif(
    importlib.util.find_spec("openapi_spec_validator") is None,
    reason="openapi-spec-validator is not installed; the structural checks below still run",
)
def test_it_passes_the_openapi_validator(schema):
    from openapi_spec_validator import validate

    validate(schema)


def test_it_is_well_formed(schema):
    operation_ids = []
    for path, item in schema["paths"].items():
        assert path.startswith("/api/"), path
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            operation_ids.append(operation["operationId"])
            assert operation["responses"], f"{method} {path} has no response"
            for code in operation["responses"]:
                assert re.fullmatch(r"[1-5]\d\d|default", code), (path, code)
            for parameter in operation.get("parameters", []):
                assert parameter["in"] in {"query", "path", "header", "cookie"}
                assert "schema" in parameter or "content" in parameter
    assert len(operation_ids) == len(set(operation_ids)), "duplicate operationId"
    for ref in set(refs(schema)):
        assert resolve(schema, ref) is not None, ref


def test_it_describes_the_contract_endpoints(schema):
    paths = schema["paths"]
    assert "post" in paths["/api/v1/auth/token/"]
    assert {"get", "post"} <= set(paths["/api/v1/organizations/"])
    assert {"get", "post"} <= set(paths["/api/v1/teams/"])
    assert "get" in paths["/api/v1/zones/"]


def test_it_describes_what_a_team_takes(schema):
    body = schema["paths"]["/api/v1/teams/"]["post"]["requestBody"]["content"]
    team_in = resolve(schema, body["application/json"]["schema"]["$ref"])
    assert {"name", "organization", "mode"} <= set(team_in["properties"])
    assert set(team_in["required"]) == {"name", "organization"}
    responses = schema["paths"]["/api/v1/teams/"]["post"]["responses"]
    assert {"201", "400", "403"} <= set(responses)


def test_it_describes_zones_as_a_geojson_feature_collection(schema):
    zones = schema["paths"]["/api/v1/zones/"]["get"]
    assert {p["name"] for p in zones["parameters"]} >= {"kind", "bbox"}
    ref = zones["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    collection = resolve(schema, ref)["properties"]
    assert resolve(schema, collection["type"]["$ref"])["enum"] == ["FeatureCollection"]
    feature = resolve(schema, collection["features"]["items"]["$ref"])["properties"]
    assert feature["geometry"]["properties"]["type"]["enum"] == ["MultiPolygon"]
    assert {"code", "name", "kind"} <= set(feature["properties"]["properties"])


def test_it_generates_the_schema_without_warnings(tmp_path):
    # A warning means a guessed type: generated clients and schema fuzzers would be misled.
    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))


def test_it_serves_the_docs_with_local_assets_only(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert not re.search(r"https?://|//cdn", html), "the docs must not load from a CDN"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    static = [url for url in assets if url.startswith("/static/")]
    assert any(url.endswith(".js") for url in static)
    assert any(url.endswith(".css") for url in static)
    for url in static:
        asset = api.get(url)
        assert asset.status_code == 200, url
        asset.close()
