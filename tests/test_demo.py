"""`make demo` (python -m hw2.demo): a real run of the experiments command line on digits."""
import json

from hw2 import demo
from hw2.results import load_experiment


def test_demo_trains_a_cnn_on_digits_through_the_cli_and_leaves_its_files(tmp_path, capsys):
    cfg, fit = demo.run(out_dir=tmp_path, epochs=3, seed=0)
    out = capsys.readouterr().out
    # Real learning: chance on the 10 digit classes is 10%.
    assert max(fit.test_acc) > 70.0
    assert fit.train_loss[-1] < fit.train_loss[0]
    assert (cfg["dataset"], cfg["model_type"], cfg["filters_per_layer"]) == ("digits", "cnn", [16, 32])
    # The result file on disk is what the run reported, and valid JSON.
    result_file = tmp_path / "demo_L2_K16-32.json"
    assert load_experiment(result_file) == (cfg, fit)
    assert json.loads(result_file.read_text())["results"]["test_acc"] == fit.test_acc
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.png", "demo_L2_K16-32.json"]
    # What the user sees: the two commands, the summary table and the final line.
    assert "$ python -m hw2.experiments run-exp -n demo --dataset digits" in out
    assert "$ python -m hw2.experiments summarize" in out
    table = out[out.index("best test acc"):]
    assert "demo_L2_K16-32" in table and f"{max(fit.test_acc):.1f}%" in table
    assert "Best test accuracy on digits" in out
