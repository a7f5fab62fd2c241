"""benchmarks.common: one naming rule, one record, one writer; every script and result file follows them."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import f1_score

from benchmarks import common
from benchmarks.common import RECORD_KEYS, RESULT_NAME, RESULTS, ROOT, Run, result_name
from benchmarks.run import macro_f1_both_classes, positive_f1

SCRIPTS = sorted(
    path for path in (ROOT / "benchmarks").glob("*.py") if path.stem not in ("__init__", "common")
)
LINK = re.compile(r"benchmarks/results/([\w.-]+(?:/[\w.-]+)?)")


def test_a_name_is_benchmark_variant_date_machine():
    assert result_name("serve_load", "2026-12-02", "cpu", "spans") == "serve_load-spans-2026-12-02-cpu"
    assert result_name("run", "2026-11-26", "cpu") == "run-2026-11-26-cpu"
    parts = RESULT_NAME.fullmatch("feedback_loop-all_decisions-2026-12-02-cpu").groupdict()
    assert parts == {
        "benchmark": "feedback_loop",
        "variant": "all_decisions",
        "date": "2026-12-02",
        "machine": "cpu",
    }
    for bad in (("serve-load", "2026-12-02", "cpu", None), ("run", "2026-12-02", "cpu", "quick-2")):
        with pytest.raises(ValueError, match="does not follow"):
            result_name(*bad)
    assert common.slug("Demo model, 2 threads") == "demo_model_2_threads"


def test_every_result_is_named_by_the_rule_and_holds_the_same_keys():
    names = [path for path in RESULTS.iterdir() if not path.name.startswith(".")]
    assert names
    for path in names:
        stem = path.name if path.is_dir() else path.name.removesuffix(".json").removesuffix(".md")
        assert path.is_dir() or path.suffix in (".json", ".md"), path
        assert RESULT_NAME.fullmatch(stem), f"{path.name} does not follow the naming rule"
    for path in RESULTS.glob("*.json"):
        record = json.loads(path.read_text())
        assert tuple(record) == RECORD_KEYS, path.name
        parts = RESULT_NAME.fullmatch(path.stem)
        assert (record["benchmark"], record["variant"], record["date"]) == parts.group(
            "benchmark", "variant", "date"
        ), path.name


def test_the_readme_and_docs_cite_only_results_that_exist():
    cited = 0
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        for match in LINK.finditer(text):
            if text[match.end() : match.end() + 1] == "<":
                continue  # a pattern (`...-<date>-<machine>/`), not a file
            name = match.group(1).rstrip(".")
            assert (RESULTS / name).exists(), f"{page.name} cites benchmarks/results/{name}, which is absent"
            cited += 1
    assert cited > 20


def test_every_script_is_a_module_of_the_package_sharing_common():
    assert len(SCRIPTS) >= 12
    for script in SCRIPTS:
        source = script.read_text()
        assert "from benchmarks.common import" in source, script.name
        assert f'arguments("{script.stem}", __doc__)' in source, script.name  # python -m benchmarks.<name>
        assert f'Run.start("{script.stem}"' in source, script.name  # its results by the one writer
        assert 'if __name__ == "__main__":' in source, script.name
        assert "sys.path.insert" not in source and "sklearn.metrics" not in source, script.name
        assert not re.search(r"^(ROOT|RESULTS|SHARED_DATA) = ", source, re.MULTILINE), script.name


def test_shared_data_honours_the_environment(tmp_path):
    said = subprocess.run(
        [sys.executable, "-c", "from benchmarks.common import SHARED_DATA; print(SHARED_DATA)"],
        cwd=ROOT,
        env={**os.environ, "TOXICITY_SHARED_DATA": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert said.stdout.strip() == str(tmp_path)


def test_a_run_writes_its_json_and_md_with_the_same_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "busy_processes", lambda: ["50% python -m something --else"])
    monkeypatch.delenv(common.MACHINE_VARIABLE, raising=False)
    run = Run.start("serve_load", "spans", ["--ckpt", "a b.ckpt"])
    assert run.command == "python -m benchmarks.serve_load --ckpt 'a b.ckpt'"
    so_far = run.write({"cells": [1]}, out=tmp_path)  # mid-run: the JSON only, no load at the end
    assert so_far.name == f"serve_load-spans-{run.date}-{run.label}.json"
    assert not so_far.with_suffix(".md").exists()
    assert json.loads(so_far.read_text())["load"]["end"] is None

    monkeypatch.setattr(common, "RESULTS", tmp_path)  # the default folder
    written = run.write({"cells": [1, 2]}, "# Load\n\n" + "\n".join(common.table(["a", "b"], [[1, 2]], "lr")))
    record = json.loads(written.read_text())
    assert tuple(record) == RECORD_KEYS and record["figures"] == {"cells": [1, 2]}
    assert record["machine"]["cores"] == os.cpu_count() and "torch" in record["machine"]
    assert len(record["load"]["start"]) == 3
    assert record["load"]["busy_at_end"] == ["50% python -m something --else"]
    markdown = written.with_suffix(".md").read_text()
    assert markdown.startswith("# Load\n\n| a | b |\n| --- | ---: |\n| 1 | 2 |\n")
    assert "## Environment" in markdown
    assert "- command: `python -m benchmarks.serve_load --ckpt 'a b.ckpt'`" in markdown
    assert sorted(p.name for p in tmp_path.iterdir()) == [written.name, written.with_suffix(".md").name]


def test_the_machine_label_is_cpu_or_what_the_environment_says(monkeypatch):
    monkeypatch.setattr(common, "gpu_name", lambda: None)
    monkeypatch.delenv(common.MACHINE_VARIABLE, raising=False)
    assert common.machine_label() == "cpu"
    monkeypatch.setattr(common, "gpu_name", lambda: "NVIDIA H200")
    assert common.machine_label() == "h200"
    monkeypatch.setenv(common.MACHINE_VARIABLE, "VM 2-core")
    assert common.machine_label() == "vm_2_core"


def test_busy_processes_names_what_used_the_cpu():
    busy = common.busy_processes(window_s=0.05)
    assert all(re.match(r"\d+% \S", line) for line in busy)


def test_the_quality_benchmark_f1_from_toxicity_evaluation_is_scikit_learns():
    rng = np.random.default_rng(0)
    for _ in range(50):
        y = (rng.random(30) < 0.3).astype(int)
        y[:2] = [0, 1]  # both classes, as in every test set
        decided = rng.random(30) < rng.random()
        assert positive_f1(y, decided) == pytest.approx(f1_score(y, decided, zero_division=0))
        assert macro_f1_both_classes(y, decided) == pytest.approx(f1_score(y, decided, average="macro"))
