"""The README's code layout and the documents' links say only what is in the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_layout() -> str:
    """The indented block of the README's "Layout of the code" section."""
    section = (ROOT / "README.md").read_text().split("## Layout of the code", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("    "))


def test_the_code_layout_names_only_modules_that_exist_and_explains_every_package():
    layout = code_layout()
    files = {path.name for folder in ("app", "bench", "scripts", "tests") for path in (ROOT / folder).rglob("*.py")}
    named = set(re.findall(r"[\w/]*?(\w+\.py)\b", layout))
    assert named and named <= files, f"named in the README's code layout, not in the tree: {named - files}"
    for path in re.findall(r"\b((?:app|tests|bench)/[\w/]+\.py)\b", layout):
        assert (ROOT / path).is_file(), path
    packages = sorted(path.parent for path in (ROOT / "app").rglob("__init__.py")) + [ROOT / "app/core/services/templates"]
    unexplained = [str(p.relative_to(ROOT)) for p in packages if p != ROOT / "app" and f"{p.name}/" not in layout]
    assert not unexplained, f"packages of app/ the README's code layout does not explain: {unexplained}"


def test_the_documents_link_only_files_and_sections_that_exist():
    def anchors(document: Path) -> set[str]:
        text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
        headings = re.findall(r"^#+\s+(.*)$", text, flags=re.M)
        return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}

    broken = []
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)\s]+)\)", document.read_text()):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = link.partition("#")
            target = (document.parent / path).resolve() if path else document
            if not target.exists() or (anchor and target.suffix == ".md" and anchor not in anchors(target)):
                broken.append(f"{document.relative_to(ROOT)}: {link}")
    assert not broken, broken
    readme = (ROOT / "README.md").read_text()
    assert "(docs/design.md)" in readme and "(docs/cli.md)" in readme
