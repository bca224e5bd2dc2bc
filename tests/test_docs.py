"""The project's own documents: they cover the published API, point nowhere outside the repository, and the
README's Layout names exactly the packages there are."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.conftest import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"
OUTSIDE = "../" + "shared"  # spelled in two parts, so this file does not match its own search


def documents() -> dict[str, str]:
    paths = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
    return {str(path.relative_to(PROJECT_ROOT)): path.read_text() for path in paths}


def test_every_operation_and_status_of_the_openapi_document_is_in_the_contract(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    contract = (DOCS / "api.md").read_text()
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| ((?:GET|POST|PATCH|PUT|DELETE) \S+) \| [^|]+ \| ([^|]+) \|", contract, re.M)
    }
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue  # path-level "parameters"
            name = f"{method.upper()} {path}"
            statuses = {status for status in operation.get("responses", {}) if status != "default"}
            listed = set(re.findall(r"\d{3}", rows.get(name, "")))
            if name not in rows or statuses != listed:
                missing.append((name, sorted(statuses), sorted(listed)))
    assert not missing
    operations_count = sum(
        1
        for operations in document["paths"].values()
        for operation in operations.values()
        if isinstance(operation, dict)
    )
    assert len(rows) == operations_count  # none made up


def test_no_document_or_source_points_outside_the_repository() -> None:
    found = [name for name, text in documents().items() if OUTSIDE in text]
    for folder in ("shop", "tests", "scripts", "migrations", "deploy"):
        found += [
            str(path.relative_to(PROJECT_ROOT))
            for path in (PROJECT_ROOT / folder).rglob("*")
            if path.is_file()
            and path.suffix in {".py", ".sql", ".lua", ".md", ".conf", ".sh"}
            and OUTSIDE in path.read_text(errors="replace")
        ]
    assert found == []


def test_links_between_documents_lead_somewhere() -> None:
    broken = []
    for name, text in documents().items():
        base = (PROJECT_ROOT / name).parent
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" not in target and not (base / target).exists():
                broken.append((name, target))
    assert broken == []


def test_the_readme_is_a_front_door() -> None:
    assert len((PROJECT_ROOT / "README.md").read_text().splitlines()) <= 160


def test_the_layout_names_every_package_and_nothing_else() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```", 2)[1]
    named = {match.group(1) for match in re.finditer(r"^  (\w+)/ ", layout, re.M)}
    packages = {path.parent.name for path in (PROJECT_ROOT / "shop").glob("*/__init__.py")}
    assert named == packages
    top = {match.group(1) for match in re.finditer(r"^(\w+)/ ", layout, re.M)}
    assert {"shop", "migrations", "tests", "scripts", "deploy", "docs"} <= top
    modules = {path.name for path in (PROJECT_ROOT / "shop").glob("*.py")}
    named_modules = set(re.findall(r"^  (\w+\.py) ", layout, re.M))
    assert named_modules == modules
