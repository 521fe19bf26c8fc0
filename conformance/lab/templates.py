"""Fill the `{{name}}` placeholders of the lab's config templates (conformance/lab/assets/).

Strict on purpose: a placeholder without a value raises instead of leaving `{{x}}` in an haproxy, nginx,
Envoy or squid config, where it would fail later with an error that names neither the template nor the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from conformance.errors import LabError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render_template(template: Path, values: Mapping[str, object]) -> str:
    """The template's text with every `{{name}}` replaced by `str(values[name])`."""
    text = template.read_text()
    missing = sorted({m.group(1) for m in PLACEHOLDER.finditer(text)} - set(values))
    if missing:
        raise LabError(f"{template}: no value for placeholder(s) {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
