"""Tests for hw2.checkpoints: how a checkpoint's contents are checked, which file a resume reads
and what it refuses (Checkpoint.for_resume), and the write error.

Writing and resuming checkpoints through a trainer is tested in test_training.py and
test_resume.py.
"""
import errno
import pickle

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import hw2.checkpoints as checkpoints
from hw2.checkpoints import CheckpointWriteError
from hw2.training import ClassifierTrainer, FitState, Trainer


def trainer(identity=None):
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return ClassifierTrainer(model, nn.CrossEntropyLoss(), optimizer, identity=identity)


def one_epoch_checkpoint(tmp_path):
    """The name of a checkpoint written by a one-epoch fit, and its payload."""
    data = TensorDataset(torch.randn(6, 4), torch.randint(0, 3, (6,)))
    name = str(tmp_path / "run")
    trainer({"seed": 1}).fit(DataLoader(data, batch_size=3), DataLoader(data, batch_size=3),
                             num_epochs=1, checkpoints=name, print_every=0)
    return name, torch.load(Trainer.checkpoint_file(name), weights_only=True)


@pytest.mark.parametrize("identity", [{1: "seed"}, {"seed": torch.tensor(1)}, {"K": [8, {2: 3}]}])
def test_a_checkpoint_whose_identity_is_not_plain_values_is_malformed(tmp_path, identity):
    name, payload = one_epoch_checkpoint(tmp_path)
    path = Trainer.checkpoint_file(name)
    payload["identity"] = identity
    with pytest.raises(ValueError, match=r"is malformed: identity"):
        checkpoints.check_payload(payload, path, "torch")
    torch.save(payload, path)
    for reader in (trainer({"seed": 1}), trainer()):  # with and without an identity of its own
        with pytest.raises(ValueError, match=rf"checkpoint {path} is malformed: identity"):
            reader.resume_from(name)


def test_a_plain_identity_passes_the_payload_check(tmp_path):
    name, payload = one_epoch_checkpoint(tmp_path)
    assert payload["identity"] == {"seed": 1}
    checkpoints.check_payload(payload, Trainer.checkpoint_file(name), "torch")  # no error
    assert trainer({"seed": 1}).resume_from(name).epochs_done == 1


def test_checkpoint_write_error_survives_pickling(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device")
    err = CheckpointWriteError(tmp_path / "run.pt", full)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is CheckpointWriteError
    assert str(back) == str(err) and back.errno == errno.ENOSPC and back.path == err.path


@pytest.mark.parametrize("cuda, ok", [(None, True), ([torch.zeros(16, dtype=torch.uint8)], True),
                                      ("junk", False), ([torch.zeros(3)], False), ([1, 2], False)])
def test_the_cuda_states_must_be_none_or_byte_tensors(tmp_path, cuda, ok):
    # A machine without a GPU never reads them, so a bad value would surface only on one.
    name, payload = one_epoch_checkpoint(tmp_path)
    payload["rng"]["cuda"] = cuda
    path = Trainer.checkpoint_file(name)
    if ok:
        checkpoints.check_payload(payload, path, "torch")
    else:
        with pytest.raises(ValueError, match=r"malformed: rng.cuda must be None or a list of "
                                             r"uint8 tensors"):
            checkpoints.check_payload(payload, path, "torch")


@pytest.mark.parametrize("saved, visible", [(2, 1), (1, 2), (2, 2)])
def test_cuda_states_are_restored_for_the_gpus_this_machine_has(monkeypatch, saved, visible):
    # A run saved with two visible GPUs, resumed where one is visible (another Slurm node):
    # the first GPU's state is restored, the missing one is not asked for.
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)

    def set_rng_state(state, device="cuda"):
        index = torch.device(device).index if not isinstance(device, int) else device
        if index is None:
            index = 0
        assert index < visible, f"cuda:{index} does not exist"
        restored.append((index, int(state[0])))

    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    rng = checkpoints.rng_states()
    rng["cuda"] = [torch.full((16,), i + 1, dtype=torch.uint8) for i in range(saved)]
    checkpoints.restore_rng_states(rng, [], "run.pt")
    assert restored == [(i, i + 1) for i in range(min(saved, visible))]


def test_for_resume_reads_the_last_file_before_the_best_and_loads_nothing(tmp_path):
    name, _ = one_epoch_checkpoint(tmp_path)
    reader = trainer({"seed": 1})
    assert checkpoints.Checkpoint.for_resume(tmp_path / "missing", reader.model, None) is None
    best = checkpoints.Checkpoint.for_resume(name, reader.model, {"seed": 1})
    assert best.path == Trainer.checkpoint_file(name) and best.epochs_done == 1
    # A last file (here: another trainer's state, same run) is taken before the best one.
    other = trainer({"seed": 1})
    other.save_checkpoint(Trainer.last_checkpoint_file(name), fit_state=FitState(),
                          loaders=[])
    before = [p.detach().clone() for p in reader.model.parameters()]
    last = checkpoints.Checkpoint.for_resume(name, reader.model, {"seed": 1})
    assert last.path == Trainer.last_checkpoint_file(name) and last.epochs_done == 0
    torch.testing.assert_close(last.model_state, other.model.state_dict(), rtol=0, atol=0)
    for p, q in zip(reader.model.parameters(), before):  # read and checked, not loaded
        assert torch.equal(p, q)


def test_for_resume_refuses_a_checkpoint_saved_outside_fit_or_of_another_run(tmp_path):
    name, _ = one_epoch_checkpoint(tmp_path)
    reader = trainer({"seed": 1})
    with pytest.raises(ValueError, match=r"checkpoint \S*run\.pt belongs to another run: "
                                         r"seed=1 in the checkpoint but 2 now"):
        checkpoints.Checkpoint.for_resume(name, reader.model, {"seed": 2})
    trainer({"seed": 1}).save_checkpoint(Trainer.checkpoint_file(name))  # outside fit
    with pytest.raises(ValueError, match=r"checkpoint \S*run\.pt holds no fit progress \(saved "
                                         r"outside fit\): nothing to resume"):
        checkpoints.Checkpoint.for_resume(name, reader.model, {"seed": 1})
