"""The training loop's pure parts: learning-rate schedule, epoch plans, batching with padding.

    python -m pytest tests/test_finetune_train_units.py -q
"""
import pytest

from finetune import train
from finetune.config import TrainConfig
from finetune.render import IGNORE, Example


def ex(i, n):
    return Example(f"e{i}", "train", list(range(1, n + 1)), [IGNORE] * (n // 2) + list(range(n // 2 + 1, n + 1)))


def test_lr_schedule():
    cfg = TrainConfig(lr=1e-3, warmup_steps=4)
    assert [train.lr_at(s, cfg, 100) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    cos = TrainConfig(lr=1e-3, warmup_steps=0, lr_schedule="cosine")
    assert train.lr_at(0, cos, 10) == pytest.approx(1e-3)
    assert train.lr_at(5, cos, 10) == pytest.approx(5e-4)
    assert train.lr_at(10, cos, 10) == pytest.approx(0.0)


def test_epoch_plan_depends_on_seed_and_epoch_only():
    examples = [ex(i, 4) for i in range(5)]
    cfg = TrainConfig(batch_size=2, grad_accum=2, seed=3)
    plan = train.plan_epoch(examples, cfg, 1)
    assert [[len(m) for m in step] for step in plan] == [[2, 2], [1]]
    assert sorted(e.id for step in plan for m in step for e in m) == [f"e{i}" for i in range(5)]
    assert [e.id for s in plan for m in s for e in m] == [e.id for s in train.plan_epoch(examples, cfg, 1)
                                                          for m in s for e in m]
    assert plan != train.plan_epoch(examples, cfg, 2)
    assert len(train.plan_epoch(examples, TrainConfig(batch_size=1, grad_accum=1, max_steps_per_epoch=2), 1)) == 2


def test_collate_pads_right_and_masks_padding():
    torch = pytest.importorskip("torch")
    ids, mask, labels = train.collate([ex(0, 4), ex(1, 2)], pad_id=9, device="cpu")
    assert ids.tolist() == [[1, 2, 3, 4], [1, 2, 9, 9]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert labels.tolist() == [[IGNORE, IGNORE, 3, 4], [IGNORE, 2, IGNORE, IGNORE]]
    assert ids.dtype == torch.long


class _FakePeft:
    """Stands in for a peft model: save_pretrained writes one file (or fails half way)."""

    def __init__(self, text, fail=False):
        self.text, self.fail = text, fail

    def save_pretrained(self, folder, save_embedding_layers=False):
        from pathlib import Path
        (Path(folder) / "adapter_model.safetensors").write_text(self.text)
        if self.fail:
            raise OSError("disk full")


class _FakeOptimizer:
    def state_dict(self):
        return {"state": {}, "param_groups": []}


def test_save_epoch_replaces_the_folder_whole_and_leaves_no_temp_files(tmp_path):
    torch = pytest.importorskip("torch")
    train._save_epoch(_FakePeft("one"), _FakeOptimizer(), tmp_path, 1)
    train._save_epoch(_FakePeft("two"), _FakeOptimizer(), tmp_path, 1)          # a re-run of epoch 1
    epoch = tmp_path / train.EPOCHS_DIR / "epoch-1"
    assert (epoch / "adapter_model.safetensors").read_text() == "two"
    assert torch.load(tmp_path / train.CHECKPOINT_FILE, weights_only=True)["epoch"] == 1
    with pytest.raises(OSError, match="disk full"):
        train._save_epoch(_FakePeft("three", fail=True), _FakeOptimizer(), tmp_path, 1)
    assert (epoch / "adapter_model.safetensors").read_text() == "two"        # the old epoch is untouched
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["adapter_model.safetensors", train.CHECKPOINT_FILE,
                                                           "epoch-1", train.EPOCHS_DIR]
