"""The browser client stays a set of small native ES modules loaded from its own
origin: no module over 700 lines, no script from another host, no import cycle."""

from __future__ import annotations

import mimetypes
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from local.gateway import build_app

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
MAX_LINES = 700
MODULES = sorted(FRONTEND.glob("*.js"))

# `import {a, b} from "./x.js";` (possibly over several lines) and `import "./x.js";`
IMPORT = re.compile(r'^\s*import\s+(?:\{(?P<names>[^}]*)\}\s*from\s+)?"(?P<source>[^"]+)"', re.M)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|const|let|class)\s+(?P<name>[\w$]+)", re.M)
DYNAMIC_IMPORT = re.compile(r"\bimport\s*\(")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _page_tags() -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed((FRONTEND / "index.html").read_text(encoding="utf-8"))
    return parser.tags


def _imports(module: Path) -> dict[str, list[str]]:
    """Imported module file name -> the names imported from it."""
    found: dict[str, list[str]] = {}
    for match in IMPORT.finditer(module.read_text(encoding="utf-8")):
        names = [n.split(" as ")[0].strip() for n in (match["names"] or "").split(",") if n.strip()]
        found.setdefault(match["source"], []).extend(names)
    return found


def test_the_client_is_split_into_modules():
    assert len(MODULES) > 5


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_no_frontend_module_is_over_700_lines(module: Path):
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module.name} has {lines} lines; split it"


def test_the_page_loads_only_its_own_module_script():
    scripts = [attrs for tag, attrs in _page_tags() if tag == "script"]
    assert scripts, "index.html loads no script"
    for attrs in scripts:
        src = attrs.get("src")
        assert src, "inline scripts are refused by the page's CSP"
        parts = urlsplit(src)
        assert not parts.scheme and not parts.netloc, f"script from another host: {src}"
        assert attrs.get("type") == "module"
        assert (FRONTEND / parts.path).is_file()


def test_the_csp_allows_scripts_from_the_page_s_origin_only():
    csp = next(
        attrs["content"]
        for tag, attrs in _page_tags()
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "content-security-policy"
    )
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_modules_import_only_names_their_siblings_export(module: Path):
    text = module.read_text(encoding="utf-8")
    assert not DYNAMIC_IMPORT.search(text), "no dynamic import(): the graph stays readable"
    for source, names in _imports(module).items():
        assert source.startswith("./") and source.endswith(".js"), f"{source}: not a sibling"
        target = FRONTEND / source
        assert target.is_file(), f"{module.name} imports a missing {source}"
        exported = set(EXPORT.findall(target.read_text(encoding="utf-8")))
        assert set(names) <= exported, f"{source} does not export {sorted(set(names) - exported)}"


def test_the_module_graph_has_no_cycle():
    graph = {m.name: [s.removeprefix("./") for s in _imports(m)] for m in MODULES}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, "import cycle: " + " -> ".join([*path[path.index(name) :], name])
        if name in done:
            return
        for child in graph.get(name, []):
            visit(child, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])


async def test_the_local_stack_serves_modules_as_javascript(monkeypatch: pytest.MonkeyPatch):
    # Browsers refuse a module script served with a non-JavaScript type, and
    # Windows' registry can map .js to text/plain for Python's mimetypes.
    mimetypes.guess_type("app.js")  # load the system's table before changing it
    monkeypatch.setitem(mimetypes.types_map, ".js", "text/plain")
    app = build_app([], FRONTEND, {"api_url": "http://127.0.0.1", "ws_url": "ws://127.0.0.1:8080"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for module in MODULES:
            response = await client.get(f"/{module.name}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/javascript")
