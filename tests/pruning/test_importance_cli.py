"""``attnpatterns prune --importance-variant``: the variant reaches the run's config, and a wrong name is refused."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from attnpatterns.cli.app import app
from tests.pruning.test_cli_pruning import _files

runner = CliRunner()


def test_importance_variant_option(tmp_path, tiny_classifier_path):
    train, dev = _files(tmp_path, n_train=4, n_dev=8)
    base = ["prune", "-m", tiny_classifier_path, "--train-file", train, "--dev-file", dev, "--max-length", "16",
            "--phases", "mlps", "--device", "cpu", "-q"]
    res = runner.invoke(app, [str(a) for a in [*base, "--importance-variant", "bertology", "-o", tmp_path / "p"]])
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "p" / "manifest.json").read_text())["config"]
    assert config["importance"]["variant"] == "bertology"
    res = runner.invoke(app, [str(a) for a in [*base, "--importance-variant", "paper", "-o", tmp_path / "q"]])
    assert res.exit_code == 2 and "per_example, bertology, michel" in res.output
    assert not (tmp_path / "q").exists()
