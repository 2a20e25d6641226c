"""The published artifact is a link only for URLs a browser can open."""

from __future__ import annotations

import prefect.artifacts as artifacts

from tokenfoundry.tasks.publish.artifacts import browser_can_open, create_published_artifact


def _capture(monkeypatch) -> list[tuple[str, dict]]:
    made: list[tuple[str, dict]] = []
    monkeypatch.setattr(artifacts, "create_link_artifact",
                        lambda **kw: made.append(("link", kw)) or "id-link")
    monkeypatch.setattr(artifacts, "create_markdown_artifact",
                        lambda **kw: made.append(("markdown", kw)) or "id-md")
    return made


def test_local_registry_is_text_with_the_pull_command(monkeypatch):
    made = _capture(monkeypatch)
    reg = "/data/ws/registry"
    assert create_published_artifact("legal-bpe@3", f"{reg}/legal-bpe/3", reg,
                                     key="legal-published") == "id-md"
    [(kind, kw)] = made
    assert kind == "markdown" and kw["key"] == "legal-published"
    md = kw["markdown"]
    assert "- version location: `/data/ws/registry/legal-bpe/3`" in md
    assert ("tokenfoundry registry --registry /data/ws/registry pull legal-bpe@3 "
            "--to ./legal-bpe") in md
    assert "](" not in md  # no markdown link either


def test_s3_is_text_and_https_is_a_link(monkeypatch):
    made = _capture(monkeypatch)
    create_published_artifact("tok@1", "s3://ml/tokenizers/tok/1", "s3://ml/tokenizers")
    create_published_artifact("tok@1", "https://models.example.org/tok/1",
                              "https://models.example.org")
    assert [k for k, _ in made] == ["markdown", "link"]
    assert made[1][1]["link"] == "https://models.example.org/tok/1"
    assert made[1][1]["link_text"] == "tok@1"


def test_browser_can_open():
    assert browser_can_open("http://127.0.0.1:4200/x") and browser_can_open("HTTPS://h/x")
    for uri in ("/abs/path", "registry/tok/1", "s3://b/k", "file:///x", "gs://b", "http:/x"):
        assert not browser_can_open(uri)
