"""The demo trains the from-scratch MLP on real digits and leaves its results on disk."""
import json

from hw2 import demo


def test_demo_learns_digits_and_writes_results(tmp_path, capsys):
    history = demo.run(epochs=4, batch_size=32, lr=0.1, seed=0, out_dir=tmp_path)
    assert history["test_acc"][-1] > 85.0
    assert history["train_loss"][-1] < history["train_loss"][0]
    saved = json.loads((tmp_path / "demo_mlp_digits.json").read_text())
    assert saved["test_acc"] == history["test_acc"]
    assert (tmp_path / "demo_mlp_digits.png").stat().st_size > 10_000
    assert not list(tmp_path.glob("*.tmp"))
    assert "Final test accuracy on digits" in capsys.readouterr().out
