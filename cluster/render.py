"""Rendering the templates in templates/ locally, so the content (and its checksum) is known
before it reaches a host. A template is named after the file it produces, plus `.j2`; every
template sees the host paths and ports as `paths` (cluster/paths.py) and writes a version's
release tag as `version | release_tag` (cluster/versions.py)."""

from functools import lru_cache

import jinja2

from cluster import PROJECT_DIR, paths
from cluster.versions import release_tag


@lru_cache(maxsize=None)
def _environment():
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROJECT_DIR / "templates")),
        undefined=jinja2.StrictUndefined,  # a missing value is an error, never an empty string
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["paths"] = paths
    environment.filters["release_tag"] = release_tag
    return environment


def render(name, **values):
    return _environment().get_template(name).render(**values)
