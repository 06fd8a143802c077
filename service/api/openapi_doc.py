"""The OpenAPI schema says what the service accepts, limits included.

Some limits are settings (text length, texts per request, label names, config names), so
the static pydantic schema cannot carry them; this fills them in when /openapi.json is
built. A client (or schemathesis) that follows the schema then gets no 422 for a request
the schema allows, and a request outside it is refused.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.settings import Settings

# A text needs one visible character: not whitespace, not a control, zero-width,
# direction or BOM character (service.text_hygiene counts those as empty).
VISIBLE = (
    "[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u08e2\\u180e"
    "\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb]"
)


def _text(max_chars: int, description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": VISIBLE, "description": description}


def patch(spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Write the settings' limits into the component schemas of `spec` (in place)."""
    from service.api.schemas_admin import SOURCE_MAX_CHARS
    from service.retrain.configs import available_configs

    limits = settings.service
    schemas = spec.get("components", {}).get("schemas", {})
    text = _text(limits.max_text_chars, "one statement or a longer text (segmented)")
    if "ClassifyRequest" in schemas:
        schemas["ClassifyRequest"]["properties"] = {
            "text": text,
            "texts": {
                "type": "array",
                "items": text,
                "minItems": 1,
                "maxItems": limits.max_texts,
                "description": "several texts, scored independently",
            },
        }
        schemas["ClassifyRequest"]["oneOf"] = [{"required": ["text"]}, {"required": ["texts"]}]
    if "AnnotationIn" in schemas:
        props = schemas["AnnotationIn"]["properties"]
        props["text"] = _text(limits.max_text_chars, "the statement")
        props["labels"] = {
            "type": "array",
            "items": {"enum": list(settings.labels)},
            "description": "label names; [] for none",
        }
        props["source"] = {
            "type": "string",
            "minLength": 1,
            "maxLength": SOURCE_MAX_CHARS,
            "pattern": VISIBLE,
            "description": "document id (groups the cross-validation folds)",
        }
    if "RetrainIn" in schemas:
        schemas["RetrainIn"]["properties"]["config"] = {
            "anyOf": [{"enum": available_configs(settings.configs_dir)}, {"type": "null"}],
            "description": "configs/<name>.yaml to layer on the service's config, e.g. 'fast'",
        }
    # Every validation error leaves the app in the one error shape (limits.install_error_handling),
    # whichever router declared the operation: document it so.
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            invalid = op.get("responses", {}).get("422", {}).get("content", {}).get("application/json", {})
            if invalid.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                invalid["schema"] = {"$ref": "#/components/schemas/ErrorBody"}
    for name in ("FeedIn", "FeedPatch"):  # the floor comes from settings, not from the model
        interval = schemas.get(name, {}).get("properties", {}).get("interval_s")
        if interval is not None:
            for option in interval["anyOf"]:  # the model's own ceiling stays
                if option.get("type") == "integer":
                    option["minimum"] = settings.monitor.min_interval_s
    trends = spec.get("paths", {}).get("/v1/trends", {}).get("get", {})
    for param in trends.get("parameters", []):
        if param.get("name") == "label":
            param["schema"] = {
                "type": "array",
                "items": {"enum": list(settings.labels)},
                "description": "repeat for several; none = every label",
            }
    review = spec.get("paths", {}).get("/v1/review/next", {}).get("get", {})
    for param in review.get("parameters", []):
        if param.get("name") == "n":
            param["schema"] = {"type": "integer", "minimum": 1, "maximum": settings.monitor.review_max_n, "default": 20}
    listing = spec.get("paths", {}).get("/v1/annotations", {}).get("get", {})
    for param in listing.get("parameters", []):
        if param.get("name") == "label":
            param["schema"] = {
                "anyOf": [{"enum": [*settings.labels, "none"]}, {"type": "null"}],
                "description": "a label name, or 'none'",
            }
    return spec


def document_limits(app: FastAPI, settings: Settings) -> None:
    """Make `app.openapi()` return the patched schema (built once, cached by FastAPI)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = patch(build(), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
