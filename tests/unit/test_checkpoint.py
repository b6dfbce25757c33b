import pytest
import torch
import transformers

from sweeps.models.checkpoint import CheckpointError, check_checkpoint_dir, load_checkpoint, save_checkpoint


def test_saved_checkpoint_loads_in_transformers_as_is(tiny, tmp_path):
    model, tok = tiny
    path = save_checkpoint(model, tok, tmp_path / "ckpt" / "step=000010")
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dir left
    loaded = transformers.AutoModelForCausalLM.from_pretrained(path)
    x = torch.tensor([[1, 5, 20, 30, 2, 6]])
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, model(x).logits, atol=1e-6)
    _, tok2 = load_checkpoint(path)
    assert (
        tok2.apply_chat_template([{"role": "user", "content": "Cards: A"}], tokenize=False, add_generation_prompt=True)
        == "<s><|user|>Cards: A<|end|><|assistant|>"
    )


def test_missing_dir_and_missing_weights(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        check_checkpoint_dir(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"has no \*\.safetensors weights"):
        check_checkpoint_dir(tmp_path)


def test_corrupted_safetensors_names_the_file(tiny, tmp_path):
    model, tok = tiny
    path = save_checkpoint(model, tok, tmp_path / "c")
    f = path / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])  # truncated download / disk full
    with pytest.raises(CheckpointError, match="corrupted safetensors file .*model.safetensors") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)
    f.write_bytes(b"\xff" * 64)  # garbage header
    with pytest.raises(CheckpointError, match="corrupted safetensors"):
        check_checkpoint_dir(path)


def test_lora_checkpoint_is_merged_into_a_plain_model(tmp_path):
    from omegaconf import OmegaConf

    from sweeps.models.build import build
    from tests.conftest import CONF

    cfg = OmegaConf.load(CONF / "model" / "tiny.yaml")
    cfg.lora.enabled = True
    model, tok = build(cfg)
    for name, p in model.named_parameters():  # make the adapters non-trivial
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    path = save_checkpoint(model, tok, tmp_path / "lora")
    plain = transformers.AutoModelForCausalLM.from_pretrained(path)
    assert not any("lora" in n for n, _ in plain.named_parameters())
    x = torch.tensor([[1, 5, 20, 30]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(plain(x).logits, model(x).logits, atol=1e-5)
    assert any("lora_A" in n for n, _ in model.named_parameters())  # adapters survive the save


def test_real_model_path_loads_through_from_pretrained_with_its_chat_template(tiny, tmp_path):
    """The hub-id/local-path builder, exercised on a local directory (no hub here)."""
    from omegaconf import OmegaConf

    from sweeps.models.build import build
    from tests.conftest import CONF

    model, tok = tiny
    save_checkpoint(model, tok, tmp_path / "local_model")
    cfg = OmegaConf.load(CONF / "model" / "qwen2_5_0_5b.yaml")
    cfg.path, cfg.dtype = str(tmp_path / "local_model"), "float32"
    loaded, tok2 = build(cfg)
    assert tok2.padding_side == "left" and tok2.pad_token is not None
    assert "<|assistant|>" in tok2.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
    )
    x = torch.tensor([[1, 5, 20]])
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, model(x).logits, atol=1e-6)
    cfg.path = None
    with pytest.raises(ValueError, match="model.path is empty"):
        build(cfg)
