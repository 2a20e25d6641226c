"""The "published" Prefect artifact: a link only where a browser can follow it.

A Prefect link artifact renders as an ``<a href>`` in the UI. A local registry path
(``/data/ws/registry/legal-bpe/3``) or an ``s3://`` URI is a dead link there (the browser
resolves it against the UI's own address). So: ``http(s)://`` URIs get a link artifact;
anything else gets a markdown artifact that shows the location as text and the command that
fetches the version (``tokenfoundry registry pull``).
"""

from __future__ import annotations

from urllib.parse import urlparse

#: URI schemes a browser opens from a page of the Prefect UI.
BROWSER_SCHEMES = ("http", "https")


def browser_can_open(uri: str) -> bool:
    return urlparse(uri).scheme.lower() in BROWSER_SCHEMES and bool(urlparse(uri).netloc)


def pull_command(ref: str, registry: str) -> str:
    name = ref.split("@", 1)[0]
    return f"tokenfoundry registry --registry {registry} pull {ref} --to ./{name}"


def published_markdown(ref: str, uri: str, registry: str) -> str:
    return "\n".join([
        f"# Published `{ref}`", "",
        f"- version location: `{uri}`",
        f"- registry: `{registry}`", "",
        "Fetch it (every file is checked against the manifest's sha256):", "",
        "```bash", pull_command(ref, registry), "```", "",
    ])


def create_published_artifact(ref: str, uri: str, registry: str, key: str | None = None,
                              description: str | None = None):
    """A link artifact for a browser-openable ``uri``, else a markdown artifact with the path
    as text and the pull command. Returns the artifact id."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    if browser_can_open(uri):
        return create_link_artifact(link=uri, link_text=ref, key=key, description=description)
    return create_markdown_artifact(markdown=published_markdown(ref, uri, registry), key=key,
                                    description=description)
