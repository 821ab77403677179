"""The README says what the code does."""

import re
from pathlib import Path

from cluster.schema import markdown_table

PROJECT = Path(__file__).resolve().parent.parent
README = (PROJECT / "README.md").read_text()


def test_defaults_table_matches_the_schema():
    table = README.split("<!-- defaults:start -->")[1].split("<!-- defaults:end -->")[0].strip()
    assert table == markdown_table(), "regenerate the table from cluster.schema.markdown_table()"


def test_stage_list_matches_deploy_py():
    stages = re.findall(r'^local\.include\("tasks/(\w+)\.py"\)', (PROJECT / "deploy.py").read_text(), re.M)
    listed = re.search(r"Stages, in the order of `deploy.py`.*?:\n(.*?)\.\n", README, re.S).group(1)
    assert [s.strip() for s in listed.replace("\n", " ").split(",")] == stages
    for stage in stages:
        assert (PROJECT / "tasks" / f"{stage}.py").is_file()


def test_first_two_commands_and_ci_agree():
    commands = re.findall(r"^make (\w+)", README, re.M)
    assert commands[:2] == ["deploy", "test"]
    assert "make test" in (PROJECT / ".ci" / "run").read_text()
