"""The JSON Schema of the OKR file format, with each installed connector's source config."""

from __future__ import annotations

from typing import Any

from okr_pipeline.connectors.registry import source_types
from okr_pipeline.okr_core.definitions import OkrFileDef


def okr_file_schema() -> dict[str, Any]:
    """JSON Schema of an OKR file; ``source`` is one of the installed connectors' configs."""
    schema = OkrFileDef.model_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    options = []
    mapping = {}
    for type_name, source_class in sorted(source_types().items()):
        sub = source_class.config_model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        name = source_class.config_model.__name__
        defs[name] = sub
        options.append({"$ref": f"#/$defs/{name}"})
        mapping[type_name] = f"#/$defs/{name}"
    kr = defs.get("KeyResultDef", {})
    source = kr.get("properties", {}).get("source")
    if source is not None:
        description = source.get("description", "The metric source of this KR.")
        kr["properties"]["source"] = {
            "description": description,
            "oneOf": options,
            "discriminator": {"propertyName": "type", "mapping": mapping},
        }
    schema["title"] = "okr-pipeline OKR file"
    return schema
