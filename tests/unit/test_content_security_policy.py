"""The page's Content-Security-Policy header (local/gateway.py, and the same
policy from CloudFront) against index.html's <meta> policy, kept as the floor
for a host that sends no header: the header only narrows it."""

from __future__ import annotations

from html.parser import HTMLParser

from local.gateway import content_security_policy
from tests.support import ROOT


def meta_policy() -> str:
    found: list[str] = []

    class Page(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            named = dict(attrs)
            if (
                tag == "meta"
                and (named.get("http-equiv") or "").lower() == "content-security-policy"
            ):
                found.append(named["content"] or "")

    Page().feed((ROOT / "frontend" / "index.html").read_text(encoding="utf-8"))
    (policy,) = found
    return policy


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def test_connect_src_names_only_the_origins_the_page_talks_to():
    policy = directives(
        content_security_policy(
            "http://127.0.0.1:4000", "wss://ws.example.com/path", "http://localhost:9000", ""
        )
    )
    assert policy["connect-src"] == [
        "'self'", "http://127.0.0.1:4000", "wss://ws.example.com", "https://ws.example.com",
        "http://localhost:9000",
    ]  # fmt: skip
    assert policy["frame-ancestors"] == ["'none'"]


def test_the_header_narrows_the_meta_policy_and_adds_what_a_meta_tag_cannot_say():
    in_page = directives(meta_policy())
    header = directives(content_security_policy("https://api.example.com"))
    assert set(header) - set(in_page) == {"frame-ancestors"}
    for name, sources in in_page.items():
        if name == "connect-src":
            assert set(header[name]) <= set(sources) | {"https://api.example.com"}
            assert not {"http:", "https:", "ws:", "wss:"} & set(header[name])
        else:
            assert header[name] == sources, name
