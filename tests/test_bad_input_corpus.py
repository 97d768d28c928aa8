"""Every invalid stack in tests/corpus/bad_stacks.yaml fails before any resource is
registered, with a message naming its key and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from planner.harness import main_program, mocked_runtime, run_pulumi
from planner.plan import PROJECT_DIR
from planner.stackfile import SECRET_PLACEHOLDER, load
from stackconfig import ConfigError, parse

CORPUS = yaml.safe_load((Path(__file__).parent / "corpus" / "bad_stacks.yaml").read_text())
PROJECT = "jupyterhub-jetstream"


def _stack_file(tmp_path: Path, case: dict[str, Any]) -> Path:
    data = yaml.safe_load((PROJECT_DIR / f"Pulumi.{case['stack']}.yaml").read_text())
    config = data["config"]
    for dotted, value in case["set"].items():
        key, *rest = dotted.split(".")
        full = f"{PROJECT}:{key}"
        if not rest:
            if value is None:
                config.pop(full, None)
            else:
                config[full] = value
            continue
        node = config.setdefault(full, {})
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(rest[-1], None)
        else:
            node[rest[-1]] = value
    path = tmp_path / f"Pulumi.{case['id']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_corpus_is_large_and_covers_every_example_stack() -> None:
    assert len(CORPUS) >= 60
    assert len({c["id"] for c in CORPUS}) == len(CORPUS)
    stacks = {p.name[len("Pulumi.") : -len(".yaml")] for p in PROJECT_DIR.glob("Pulumi.*.yaml")}
    assert stacks <= {c["stack"] for c in CORPUS}, "add cases for every example stack"


@pytest.mark.parametrize("case", CORPUS, ids=[c["id"] for c in CORPUS])
def test_bad_stack_fails_before_any_resource_naming_the_key(case: dict[str, Any], tmp_path: Path) -> None:
    path = _stack_file(tmp_path, case)
    stack = load(PROJECT_DIR, case["id"], path)
    with pytest.raises(ConfigError) as error:
        parse(stack.config, secret_keys=stack.secret_keys, namespace=stack.project)
    messages = [str(p) for p in error.value.problems]
    assert any(m.startswith(case["key"]) and case["expect"] in m for m in messages), messages
    assert SECRET_PLACEHOLDER not in str(error.value)

    # The real program refuses it too, and registers nothing first.
    with mocked_runtime(stack.project, stack.stack, stack.config, stack.secret_keys) as monitor:
        with pytest.raises(pulumi.RunError, match="invalid stack configuration"):
            run_pulumi(main_program(PROJECT_DIR))
        assert monitor.registrations == []
