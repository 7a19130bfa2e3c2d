"""What makes a `pipeline_config` valid. Pure functions: the caller passes the tool types it knows.

A pipeline is a set of tools joined by connections: each tool has a unique `name` and a `type` (the name when
left out, as in `{"name": "blob_detection"}`), known to the catalogue or built into every machine; each
connection names two tools of the pipeline; the connections form no cycle. Every problem is reported with the
field at fault (`body.pipeline_config.tools[1].type`), so the 422 says which tool or connection to fix.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mirante.types import JsonObject, Text

MAX_TOOLS = 100
MAX_CONNECTIONS = 1000
FIELD = "body.pipeline_config"

ToolName = Annotated[Text, Field(min_length=1, max_length=100)]


class Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ToolName = Field(examples=["blob_detection"])
    type: Annotated[Text, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="an inspection type or `image_source`; the name when left out"
    )
    parameters: JsonObject = Field(default_factory=dict, examples=[{"min_area": 100, "threshold": 128}])

    @property
    def tool_type(self) -> str:
        return self.type or self.name


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: ToolName = Field(alias="from", examples=["image_source"])
    target: ToolName = Field(alias="to", examples=["blob_detection"])


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tools: Annotated[list[Tool], Field(min_length=1, max_length=MAX_TOOLS)]
    connections: Annotated[list[Connection], Field(max_length=MAX_CONNECTIONS)] = []

    def stored(self) -> dict[str, Any]:
        """The JSON kept in the database and sent to machines (`from`/`to`, every tool with its type)."""
        return {
            "tools": [
                {"name": tool.name, "type": tool.tool_type, "parameters": tool.parameters} for tool in self.tools
            ],
            "connections": [{"from": link.source, "to": link.target} for link in self.connections],
        }


def problems(config: PipelineConfig, known_types: Collection[str]) -> list[dict[str, str]]:
    """Every problem of `config` as `{"field", "message"}`, in order; empty when it is valid."""
    found: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for index, tool in enumerate(config.tools):
        if tool.name in seen:
            found.append(
                {
                    "field": f"{FIELD}.tools[{index}].name",
                    "message": f"tool name {tool.name!r} is used by tools[{seen[tool.name]}] already",
                }
            )
        else:
            seen[tool.name] = index
        if tool.tool_type not in known_types:
            found.append(
                {
                    "field": f"{FIELD}.tools[{index}].{'type' if tool.type else 'name'}",
                    "message": f"tool {tool.name!r} has the unknown type {tool.tool_type!r}",
                }
            )
    edges: dict[str, list[str]] = {name: [] for name in seen}
    for index, link in enumerate(config.connections):
        for end, name in (("from", link.source), ("to", link.target)):
            if name not in seen:
                found.append(
                    {
                        "field": f"{FIELD}.connections[{index}].{end}",
                        "message": f"connection {link.source!r} -> {link.target!r} names no tool {name!r}",
                    }
                )
        if link.source in seen and link.target in seen:
            edges[link.source].append(link.target)
    cycle = find_cycle(edges)
    if cycle:
        found.append(
            {"field": f"{FIELD}.connections", "message": f"the connections form a cycle: {' -> '.join(cycle)}"}
        )
    return found


def find_cycle(edges: dict[str, list[str]]) -> list[str]:
    """One cycle of the graph as the names along it (first name repeated at the end), or [] when it has none."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    for start in edges:
        if colour[start] != white:
            continue
        path = [start]
        stack = [iter(edges[start])]
        colour[start] = grey
        while stack:
            step = next(stack[-1], None)
            if step is None:
                colour[path.pop()] = black
                stack.pop()
            elif colour[step] == grey:
                return [*path[path.index(step) :], step]
            elif colour[step] == white:
                colour[step] = grey
                path.append(step)
                stack.append(iter(edges[step]))
    return []
