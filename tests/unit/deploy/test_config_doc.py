"""The configuration reference is complete and matches the settings classes."""

from __future__ import annotations

import pytest

from deploy.config_doc import SECTIONS, render_env_example, render_readme_table, replace_marked, variables
from deploy.paths import REPO_ROOT


def test_every_variable_is_described_and_named_once() -> None:
    names = [v.name for _, classes in SECTIONS for settings in classes for v in variables(settings)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for _, classes in SECTIONS:
        for settings in classes:
            for variable in variables(settings):
                assert variable.description, f"{variable.name} has no description"


def test_readme_table_and_env_example_are_up_to_date() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert replace_marked(readme, render_readme_table()) == readme, "run: python -m deploy config write"
    assert (REPO_ROOT / "deploy" / "env.example").read_text() == render_env_example()


def test_secrets_are_not_printed_in_the_readme() -> None:
    table = render_readme_table()
    assert "sim-client-secret" not in table
    assert "dev-1:" not in table


def test_a_document_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no config markers"):
        replace_marked("# nothing here", render_readme_table())
