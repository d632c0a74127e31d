"""The docs say what the code does: the settings reference lists exactly the settings conf
reads, every setting the docs name exists, and the README stays a front door."""

from __future__ import annotations

import re
from pathlib import Path

from llm_gateway.conf import all_settings

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"LLM_GATEWAY_[A-Z0-9_]*[A-Z0-9]")


def app_settings() -> set[str]:
    return {f"LLM_GATEWAY_{setting.name}" for setting in all_settings().values()}


def project_settings() -> set[str]:
    """What the example project reads itself (its own files), beside the app's settings."""
    found = {n for path in (ROOT / "project").glob("*.py") for n in NAME.findall(path.read_text())}
    return found - app_settings()


def test_the_reference_lists_exactly_the_settings_conf_reads():
    reference = (ROOT / "docs" / "settings.md").read_text()
    app_part, _, project_part = reference.partition("## The example project")
    tables = {
        m
        for line in app_part.splitlines()
        if line.startswith("| `")
        for m in NAME.findall(line.split("|")[1])
    }
    assert tables == app_settings(), (
        f"not in the reference: {sorted(app_settings() - tables)}; "
        f"not read by conf: {sorted(tables - app_settings())}"
    )
    assert project_settings() <= set(NAME.findall(project_part)), project_settings()


def test_every_setting_the_docs_name_exists():
    known = app_settings() | project_settings()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        unknown = set(NAME.findall(page.read_text())) - known
        assert not unknown, f"{page.name} names settings that do not exist: {sorted(unknown)}"


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    commands = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert commands is not None
    assert [line.split("#")[0].strip() for line in commands.group(1).splitlines()] == [
        "bash scripts/serve.sh",
        "bash scripts/test.sh",
    ]
    for link in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)\)", readme):
        assert (ROOT / link).is_file(), link
