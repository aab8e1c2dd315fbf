"""One self-contained, readable HTML page of an AsyncAPI 3.0 document (no JavaScript).

Pure: `render(document)` returns the page as a string; `tradebus schema html FILE` writes
the page of `asyncapi.asyncapi()` and the committed copy is `docs/asyncapi.html` (a test
fails when it drifts from the code).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

_CODE = re.compile(r"`([^`]+)`")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 72rem;
       padding: 1rem 2rem 4rem; color: #1d2330; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7e2; padding-bottom: .3rem; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid #d0d7e2; }
h3 { margin-top: 2rem; }
code { background: #eef1f6; padding: 0 .25rem; border-radius: 3px; font-size: .92em; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .93rem; }
th, td { border: 1px solid #d0d7e2; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f5f9; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 3px; font-size: .8rem; font-weight: 600;
         color: #fff; background: #5b6b85; margin-right: .3rem; }
.send { background: #1f7a4d; } .receive { background: #1f5a9a; } .jetstream { background: #8a4fbf; }
.core { background: #6b7280; } .core-request-reply { background: #b26b00; }
.muted { color: #5b6b85; } .required { font-weight: 600; }
nav ul { columns: 2; } section.member { margin-left: 1rem; }
"""


def _text(value: Any) -> str:
    """Escape, then turn `code` spans into <code> and blank lines into paragraph breaks."""
    escaped = html.escape(re.sub(r"\n[ \t]+", " ", str(value)), quote=False)
    escaped = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", escaped)
    return escaped.replace("\n\n", "<br><br>").replace("\n", "<br>")


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-{re.sub(r'[^A-Za-z0-9_-]', '-', name)}"


class _Page:
    def __init__(self, document: dict[str, Any]) -> None:
        self.doc = document
        self.schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = self.lookup(node["$ref"])
        return node

    def lookup(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported: {ref}")
        node: Any = self.doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    @staticmethod
    def ref_name(ref: str) -> str:
        return ref.rsplit("/", 1)[-1]

    def type_of(self, schema: Any) -> str:
        """A short HTML description of a property's type."""
        if schema is True or schema == {}:
            return "any"
        if not isinstance(schema, dict):
            return html.escape(json.dumps(schema))
        if "$ref" in schema:
            name = self.ref_name(schema["$ref"])
            if schema["$ref"].startswith("#/components/schemas/"):
                return f'<a href="#{_anchor("schema", name)}">{html.escape(name)}</a>'
            return html.escape(name)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return " | ".join(self.type_of(s) for s in schema[key])
        if "enum" in schema:
            return "one of " + ", ".join(f"<code>{html.escape(json.dumps(v))}</code>" for v in schema["enum"])
        if "const" in schema:
            return f"<code>{html.escape(json.dumps(schema['const']))}</code>"
        kind = schema.get("type", "any")
        if kind == "array":
            return f"array of {self.type_of(schema.get('items', True))}"
        if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            return f"map of string to {self.type_of(schema['additionalProperties'])}"
        if isinstance(kind, list):
            return " | ".join(html.escape(str(k)) for k in kind)
        if schema.get("format"):
            return f"{html.escape(kind)} ({html.escape(schema['format'])})"
        return html.escape(kind)

    def constraints(self, schema: Any) -> str:
        schema = schema if isinstance(schema, dict) else {}
        for key in ("anyOf", "oneOf"):  # Optional[X]: show X's constraints
            options = [s for s in schema.get(key, []) if s != {"type": "null"}]
            if len(options) == 1:
                return self.constraints(options[0])
        parts = []
        for key in ("pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
                    "exclusiveMaximum", "minItems", "maxItems"):
            if key in schema:
                parts.append(f"{key} <code>{html.escape(str(schema[key]))}</code>")
        return "; ".join(parts)

    @staticmethod
    def description(schema: Any) -> str:
        if not isinstance(schema, dict):
            return ""
        if "description" in schema:
            return str(schema["description"])
        for key in ("anyOf", "oneOf"):
            for option in schema.get(key, []):
                if isinstance(option, dict) and "description" in option:
                    return str(option["description"])
        return ""

    def fields_table(self, schema: dict[str, Any], *, note: bool = True) -> list[str]:
        properties = schema.get("properties", {})
        if not properties:
            return ['<p class="muted">No fields besides its tag.</p>']
        required = set(schema.get("required", []))
        out = ["<table><tr><th>field</th><th>type</th><th>required</th><th>default</th><th>constraints</th>"
               "<th>description</th></tr>"]
        for name, prop in properties.items():
            default = f"<code>{html.escape(json.dumps(prop['default']))}</code>" if "default" in prop else ""
            req = '<span class="required">yes</span>' if name in required else "no"
            out.append(f"<tr><td><code>{html.escape(name)}</code></td><td>{self.type_of(prop)}</td><td>{req}</td>"
                       f"<td>{default}</td><td>{self.constraints(prop)}</td><td>{_text(self.description(prop))}</td></tr>")
        out.append("</table>")
        if not note:
            return out
        if schema.get("additionalProperties") is False:
            out.append('<p class="muted">Unknown fields are refused (commands and requests).</p>')
        else:
            out.append('<p class="muted">Unknown fields are ignored (a newer producer may add optional fields).</p>')
        return out

    def struct(self, name: str, schema: dict[str, Any], level: int) -> list[str]:
        out = [f'<h{level} id="{_anchor("schema", name)}">{html.escape(name)}</h{level}>']
        if schema.get("description"):
            out.append(f"<p>{_text(schema['description'])}</p>")
        return out + self.fields_table(schema)

    def payload(self, ref: str) -> list[str]:
        schema = self.lookup(ref)
        members = schema.get("oneOf") or schema.get("anyOf")
        if not members:
            return self.struct(self.ref_name(ref), self.resolve(schema), 4)
        out = []
        tag_field = schema.get("x-discriminator", {}).get("propertyName", "type")
        for member in members:
            name = self.ref_name(member["$ref"])
            resolved = self.resolve(member)
            tag = resolved.get("properties", {}).get(tag_field, {}).get("enum", [""])[0]
            out.append('<section class="member">')
            out.append(f'<h4 id="{_anchor("schema", name)}"><code>{html.escape(tag_field)}: '
                       f'{html.escape(json.dumps(tag))}</code> {html.escape(name)}</h4>')
            if resolved.get("description"):
                out.append(f"<p>{_text(resolved['description'])}</p>")
            out += self.fields_table(resolved)
            out.append("</section>")
        return out

    def render(self) -> str:
        doc = self.doc
        info = doc.get("info", {})
        title = f"{info.get('title', 'AsyncAPI')} (version {info.get('version', '')})"
        channels: dict[str, Any] = doc.get("channels", {})
        operations: dict[str, Any] = doc.get("operations", {})
        components = doc.get("components", {})
        messages: dict[str, Any] = components.get("messages", {})
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="muted">AsyncAPI {html.escape(doc.get("asyncapi", ""))}, generated by '
            "<code>tradebus schema html</code> from <code>schemas/asyncapi.json</code>; do not edit by hand.</p>",
            f"<p>{_text(info.get('description', ''))}</p>",
        ]
        if doc.get("servers"):
            out.append("<h2 id=\"servers\">Servers</h2><table><tr><th>name</th><th>host</th><th>protocol</th>"
                       "<th>description</th></tr>")
            for name, server in doc["servers"].items():
                out.append(f"<tr><td>{html.escape(name)}</td><td><code>{html.escape(server.get('host', ''))}</code></td>"
                           f"<td>{html.escape(server.get('protocol', ''))}</td><td>{_text(server.get('description', ''))}</td></tr>")
            out.append("</table>")

        out.append('<nav><h2 id="contents">Contents</h2><ul>')
        for cid, channel in channels.items():
            if channel.get("address") is not None:
                out.append(f'<li><a href="#{_anchor("channel", cid)}"><code>{html.escape(channel["address"])}</code></a></li>')
        out.append('<li><a href="#operations">Operations</a></li><li><a href="#messages">Messages</a></li>'
                   '<li><a href="#types">Shared types</a></li></ul></nav>')

        out.append('<h2 id="operations">Operations</h2>')
        out.append("<table><tr><th>operation</th><th>action</th><th>channel</th><th>message</th><th>reply</th>"
                   "<th>published by</th><th>consumed by</th></tr>")
        for oid, op in operations.items():
            cid = self.ref_name(op["channel"]["$ref"])
            address = channels[cid].get("address") or ""
            msgs = ", ".join(self._message_link(m["$ref"]) for m in op.get("messages", []))
            reply = ", ".join(self._message_link(m["$ref"]) for m in op.get("reply", {}).get("messages", []))
            out.append(f'<tr><td>{html.escape(oid)}</td><td><span class="badge {op["action"]}">{op["action"]}</span></td>'
                       f'<td><a href="#{_anchor("channel", cid)}"><code>{html.escape(address)}</code></a></td>'
                       f"<td>{msgs}</td><td>{reply}</td><td>{_text(op.get('x-publishers', ''))}</td>"
                       f"<td>{_text(op.get('x-consumers', ''))}</td></tr>")
        out.append("</table>")

        out.append('<h2 id="channels">Channels</h2>')
        for cid, channel in channels.items():
            if channel.get("address") is None:
                continue
            out += self._channel(cid, channel, operations, channels)

        out.append('<h2 id="messages">Messages</h2>')
        payload_refs: set[str] = set()
        for mid, message in messages.items():
            out.append(f'<h3 id="{_anchor("message", mid)}">{html.escape(message.get("name", mid))}</h3>')
            if message.get("summary"):
                out.append(f"<p>{_text(message['summary'])}</p>")
            if message.get("contentType"):
                out.append(f"<p>Content type: <code>{html.escape(message['contentType'])}</code></p>")
            headers = message.get("headers")
            if headers:
                out.append("<p><strong>Headers</strong></p>")
                out += self.fields_table(self.resolve(headers), note=False)
            payload = message.get("payload")
            if payload is None:
                out.append(f"<p>{_text(message.get('description', 'No payload.'))}</p>")
                continue
            payload_refs.add(payload.get("$ref", ""))
            out.append("<p><strong>Payload</strong></p>")
            out += self.payload(payload["$ref"]) if "$ref" in payload else self.fields_table(payload)

        out.append('<h2 id="types">Shared types</h2>')
        out.append('<p class="muted">Structs nested in payloads, and enumerations.</p>')
        shown = {self.ref_name(ref) for ref in payload_refs}
        for ref in payload_refs:
            schema = self.lookup(ref) if ref else {}
            shown.update(self.ref_name(m["$ref"]) for m in schema.get("oneOf") or schema.get("anyOf") or [] if "$ref" in m)
        for name, schema in sorted(self.schemas.items()):
            if name in shown:
                continue
            if "enum" in schema:
                out.append(f'<h3 id="{_anchor("schema", name)}">{html.escape(name)}</h3>')
                if schema.get("description"):
                    out.append(f"<p>{_text(schema['description'])}</p>")
                out.append(f"<p>{self.type_of({'enum': schema['enum']})}</p>")
            else:
                out += self.struct(name, schema, 3)
        out.append("</body></html>")
        return "\n".join(out) + "\n"

    def _message_link(self, ref: str) -> str:
        node = self.lookup(ref)
        mid = self.ref_name(node["$ref"]) if isinstance(node, dict) and "$ref" in node else self.ref_name(ref)
        message = self.resolve(node)
        return f'<a href="#{_anchor("message", mid)}">{html.escape(message.get("name", mid))}</a>'

    def _channel(self, cid: str, channel: dict[str, Any], operations: dict[str, Any], channels: dict[str, Any]) -> list[str]:
        delivery = channel.get("x-delivery", {})
        transport = delivery.get("transport", "")
        out = [f'<h3 id="{_anchor("channel", cid)}"><code>{html.escape(channel["address"])}</code></h3>',
               f'<p><span class="badge {html.escape(transport)}">{html.escape(transport)}</span>'
               f"{_text(channel.get('summary', ''))}</p>"]
        params = channel.get("parameters", {})
        if params:
            out.append("<table><tr><th>parameter</th><th>values</th><th>description</th></tr>")
            for name, param in params.items():
                param = self.resolve(param)
                values = (", ".join(f"<code>{html.escape(v)}</code>" for v in param["enum"]) if "enum" in param
                          else "e.g. " + ", ".join(f"<code>{html.escape(v)}</code>" for v in param.get("examples", [])))
                out.append(f"<tr><td><code>{{{html.escape(name)}}}</code></td><td>{values}</td>"
                           f"<td>{_text(param.get('description', ''))}</td></tr>")
            out.append("</table>")
        rows = [("Delivery", delivery.get("details", "")), ("Guarantee", delivery.get("guarantee", ""))]
        if delivery.get("stream"):
            rows.append(("JetStream stream", f"`{delivery['stream']}`"))
        for op_id, op in operations.items():
            if op["channel"]["$ref"] != f"#/channels/{cid}":
                continue
            rows.append(("Operation", f"{op_id} ({op['action']})"))
            rows.append(("Published by", op.get("x-publishers", "")))
            rows.append(("Consumed by", op.get("x-consumers", "")))
            for message in op.get("messages", []):
                rows.append(("Message", message["$ref"]))
            for message in op.get("reply", {}).get("messages", []):
                rows.append(("Reply", message["$ref"]))
        out.append("<table>")
        for label, value in rows:
            cell = self._message_link(value) if label in ("Message", "Reply") else _text(value)
            out.append(f"<tr><th>{html.escape(label)}</th><td>{cell}</td></tr>")
        out.append("</table>")
        return out


def render(document: dict[str, Any]) -> str:
    """The HTML page of an AsyncAPI 3.0 document."""
    return _Page(document).render()
