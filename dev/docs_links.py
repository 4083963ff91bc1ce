"""MkDocs hook (mkdocs.yml `hooks:`): links in the text a page includes from
README.md or ARCHITECTURE.md (pymdownx.snippets) are written relative to the
repository's root, where those files live; on the page they must be relative
to the page. A link that does not resolve from the page but does from the
root, to a file under docs/ (README's docs/benchmarks.svg), is rewritten to
point there from the page. Anything else is left as written, so
`mkdocs build --strict` still reports it.

The snippets are expanded inside the Markdown conversion, after every
page-level hook, so the rewrite is a tree processor that runs between
parsing and MkDocs' own check of the links.
"""
from __future__ import annotations

import os
import posixpath
from typing import Any

from markdown import Extension, Markdown
from markdown.treeprocessors import Treeprocessor

# the page being converted (MkDocs converts one page at a time)
_current: dict = {}


class _RootLinks(Treeprocessor):
    def run(self, root: Any) -> None:
        page, files, config = _current.get("page"), _current.get("files"), _current.get("config")
        if page is None:
            return
        docs_dir = config["docs_dir"]
        top = os.path.dirname(config["config_file_path"])
        here = posixpath.dirname(page.file.src_uri)
        for el in root.iter():
            key = {"a": "href", "img": "src"}.get(el.tag)
            target = el.get(key) if key else None
            # URLs, absolute paths and anchors on the page need nothing
            if not target or target.startswith(("/", "#")) or ":" in target.split("/")[0]:
                continue
            path, sep, anchor = target.partition("#")
            if files.get_file_from_path(posixpath.normpath(posixpath.join(here, path))):
                continue
            in_docs = os.path.relpath(os.path.join(top, path), docs_dir).replace(os.sep, "/")
            if in_docs.startswith("../") or not files.get_file_from_path(in_docs):
                continue
            el.set(key, posixpath.relpath(in_docs, here or ".") + sep + anchor)


class _RootLinksExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:
        # after the inline patterns (20) have made the links, before
        # MkDocs' relative-path processor (0) checks them
        md.treeprocessors.register(_RootLinks(md), "gomp_root_links", 5)


def on_config(config: Any) -> Any:
    config.markdown_extensions.append(_RootLinksExtension())
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    _current.update(page=page, config=config, files=files)
    return markdown
