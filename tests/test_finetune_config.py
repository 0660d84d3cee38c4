"""Typed training config, the committed config file, and the CLI's handling of bad inputs.

    python -m pytest tests/test_finetune_config.py -q
"""
import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from finetune.__main__ import main, parser
from finetune.config import DEFAULT_CONFIG, PROJECTIONS, ConfigError, TrainConfig, add_flags, from_args

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def test_committed_config_parses():
    cfg = TrainConfig.load(ROOT / DEFAULT_CONFIG)
    assert cfg.lora_r == 16 and cfg.target_modules == PROJECTIONS and cfg.epochs == 6
    assert cfg.batch_size * cfg.grad_accum >= 1 and 0 < cfg.lr < 1e-3
    assert cfg.max_seq_len >= 768 and cfg.lr_schedule == "constant"


def test_every_field_has_help_and_a_flag():
    p = argparse.ArgumentParser()
    add_flags(p)
    flags = {a.dest: a for a in p._actions if a.dest != "help"}
    for f in fields(TrainConfig):
        assert f.metadata["help"] and "\n" not in f.metadata["help"]
        assert f.name in flags and flags[f.name].help == f.metadata["help"]


def test_toml_round_trip(tmp_path):
    cfg = TrainConfig(epochs=2, lr=1e-3, target_modules=("q_proj", "k_proj"), truncate=True, data="a \"b\".jsonl")
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert TrainConfig.load(path) == cfg


def test_every_problem_is_collected():
    with pytest.raises(ConfigError) as e:
        TrainConfig(lr=-1.0, epochs=0, lora_dropout=1.5, target_modules=("q_proj", "qkv"), device="tpu")
    msg = str(e.value)
    for part in ("epochs: must be >= 1", "lr: must be > 0, got -1.0", "lora_dropout: must be in [0, 1)",
                 "target_modules: must be a non-empty list", "device: must be auto, cpu or cuda"):
        assert part in msg


def test_types_are_checked():
    with pytest.raises(ConfigError, match="epochs: must be an integer, got '6'"):
        TrainConfig(epochs="6")
    with pytest.raises(ConfigError, match="truncate: must be true or false"):
        TrainConfig(truncate=1)


def test_typo_key_suggests_the_field(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('learning_rate = 0.001\nlora_rank = 8\n')
    with pytest.raises(ConfigError) as e:
        TrainConfig.load(path)
    assert "unknown key 'lora_rank' (did you mean 'lora_r'?)" in str(e.value)
    assert "unknown key 'learning_rate'" in str(e.value)


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("epochs = 3\nlr = 0.001\n")
    args = parser().parse_args(["train", "--config", str(path), "--lr", "0.002", "--target-modules", "q_proj,v_proj"])
    cfg = from_args(args, args.config)
    assert (cfg.epochs, cfg.lr, cfg.target_modules) == (3, 0.002, ("q_proj", "v_proj"))


# ---- the CLI: one clear line, exit 1, nothing written ---------------------------------------------
def _run_train(tmp_path, capsys, *argv):
    out = tmp_path / "run"
    rc = main(["train", "--out-dir", str(out), "--no-progress", *argv])
    err = capsys.readouterr().err.strip()
    return rc, err, out


def test_train_with_typo_config(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("epocs = 3\n")
    rc, err, out = _run_train(tmp_path, capsys, "--config", str(path))
    assert rc == 1 and err.startswith("error: ") and "did you mean 'epochs'" in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_train_with_negative_learning_rate(tmp_path, capsys):
    rc, err, out = _run_train(tmp_path, capsys, "--lr", "-0.1")
    assert rc == 1 and err == "error: lr: must be > 0, got -0.1" and not out.exists()


@pytest.mark.parametrize("name, expected", [("finetune_malformed.jsonl", "json: Expecting"),
                                            ("finetune_empty.jsonl", "holds no annotations"),
                                            ("missing.jsonl", "does not exist")])
def test_train_with_bad_data(tmp_path, capsys, name, expected):
    rc, err, out = _run_train(tmp_path, capsys, "--data", str(DATA / name))
    assert rc == 1 and expected in err and len(err.splitlines()) == 1 and not out.exists()


def test_train_with_missing_config(tmp_path, capsys):
    rc, err, _ = _run_train(tmp_path, capsys, "--config", str(tmp_path / "nope.toml"))
    assert rc == 1 and "does not exist" in err


def test_export_without_a_run(tmp_path, capsys):
    assert main(["export", "--run", str(tmp_path)]) == 1
    assert "is not a training run" in capsys.readouterr().err


def test_cli_prints_a_user_error_in_one_line_and_keeps_a_bugs_traceback(monkeypatch, capsys):
    import finetune.__main__ as cli
    from assistant.errors import BadModelFile

    def user_error(a):
        raise BadModelFile("x.gguf is truncated: download it again")
    monkeypatch.setattr(cli, "cmd_config", user_error)
    assert main(["config"]) == 1
    assert capsys.readouterr().err.strip() == "error: x.gguf is truncated: download it again"

    def bug(a):
        raise KeyError("a bug")
    monkeypatch.setattr(cli, "cmd_config", bug)
    with pytest.raises(KeyError):
        main(["config"])


def test_settings_are_read_from_the_environment_at_the_entry_point(monkeypatch):
    import finetune.__main__ as cli

    seen = []
    monkeypatch.setattr(cli, "cmd_config", lambda a: seen.append(a.settings) or 0)
    assert main(["config"], env={"HF_HUB_OFFLINE": "1"}) == 0 and main(["config"], env={}) == 0
    assert seen == [cli.Settings(hub_offline=True), cli.Settings(hub_offline=False)]
