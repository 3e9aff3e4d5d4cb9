#!/usr/bin/env python3
"""Builds the tiny DeepSeek-V3-family reference models with Hugging Face transformers.

For each configuration below this script
  1. builds DeepseekV3ForCausalLM from a DeepseekV3Config,
  2. re-initialises every weight so activations and logits are O(1) (the default 0.02
     init makes all logits ~0 and a comparison meaningless),
  3. rounds the weights to bfloat16 and saves them with save_pretrained (checkpoint
     tensor names: per-expert gate/up/down projections),
  4. reloads the saved checkpoint in float32 (so the reference is computed from exactly
     the stored bf16 values) and records, with eager attention:
       - float32 logits for every position of several prompts (1 to 70 tokens, longer
         than one 64-token KV page),
       - a 16-token greedy continuation of each prompt (model.generate, do_sample=False),
         checked against repeated uncached forwards, with prompts drawn so that no
         greedy step is a near-tie (top-2 margin >= MIN_MARGIN),
       - the rotary inverse frequencies, the rotary scale and the softmax scale.

Outputs, per model, under OUT/<name>/: config.json, model.safetensors (+ whatever
save_pretrained writes), reference.safetensors (prompt_<i>.tokens I32, prompt_<i>.logits
F32 [len, vocab], prompt_<i>.greedy I32 [16], rope.inv_freq F32) and reference.json.

Usage: python3 make_fixtures.py OUT_DIR      (runs on the CPU; takes seconds)
"""
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

PROMPT_LENGTHS = [1, 5, 33, 64, 65, 70]
GREEDY_TOKENS = 16
MIN_MARGIN = 1e-3  # smallest accepted gap between the best and second-best logit

COMMON = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    moe_intermediate_size=32,
    num_attention_heads=4,
    num_key_value_heads=4,
    kv_lora_rank=32,
    qk_rope_head_dim=16,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    attention_bias=False,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=None,
)

MODELS = {
    # Query compression, YaRN (mscale == mscale_all_dim, so cos/sin are unscaled but the
    # softmax scale grows), group-limited routing, routed scaling, one dense first layer.
    "dsv3-qlora-yarn-groups": dict(
        COMMON,
        num_hidden_layers=3,
        q_lora_rank=48,
        qk_nope_head_dim=32,
        v_head_dim=32,
        n_routed_experts=8,
        num_experts_per_tok=2,
        n_shared_experts=1,
        n_group=4,
        topk_group=2,
        norm_topk_prob=True,
        routed_scaling_factor=2.5,
        first_k_dense_replace=1,
        rope={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 32,
              "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0},
        rope_interleave=True,
    ),
    # No query compression, plain RoPE in half-split layout, a single expert group,
    # unnormalised top-k weights, two shared experts, MoE from layer 0, v_head != qk_nope.
    "dsv3-plain-noqlora": dict(
        COMMON,
        num_hidden_layers=2,
        q_lora_rank=None,
        qk_nope_head_dim=32,
        v_head_dim=24,
        n_routed_experts=8,
        num_experts_per_tok=3,
        n_shared_experts=2,
        n_group=1,
        topk_group=1,
        norm_topk_prob=False,
        routed_scaling_factor=1.0,
        first_k_dense_replace=0,
        rope={"rope_type": "default", "rope_theta": 50000.0},
        rope_interleave=False,
    ),
    # Kimi-K2-like: YaRN with mscale != mscale_all_dim (cos/sin scaled by their ratio),
    # three groups of four experts, routed scaling 2.827, two dense first layers.
    "kimi-like-yarn-mscale": dict(
        COMMON,
        num_hidden_layers=4,
        q_lora_rank=32,
        qk_nope_head_dim=24,
        v_head_dim=32,
        n_routed_experts=12,
        num_experts_per_tok=3,
        n_shared_experts=1,
        n_group=3,
        topk_group=2,
        norm_topk_prob=True,
        routed_scaling_factor=2.827,
        first_k_dense_replace=2,
        rope={"rope_type": "yarn", "rope_theta": 50000.0, "factor": 8.0, "original_max_position_embeddings": 16,
              "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 0.8},
        rope_interleave=True,
    ),
}


def make_config(spec):
    spec = dict(spec)
    rope = spec.pop("rope")
    try:  # transformers 5: rope_parameters holds the theta and the scaling
        return DeepseekV3Config(rope_parameters=rope, **spec)
    except TypeError:
        scaling = None if rope["rope_type"] == "default" else {k: v for k, v in rope.items() if k != "rope_theta"}
        return DeepseekV3Config(rope_theta=rope["rope_theta"], rope_scaling=scaling, **spec)


def reinitialise(model, generator):
    """Weights with O(1) activations: N(0, 1/fan_in) matrices, norms near 1."""
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if "inv_freq" in name:
                continue
            if "e_score_correction_bias" in name:
                tensor.copy_((torch.rand(tensor.shape, generator=generator) - 0.5) * 0.1)
            elif name.endswith(".bias"):  # GQA q/k/v projection biases
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            elif "norm" in name:
                tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=generator))
            elif "embed_tokens" in name:
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
            elif tensor.dim() >= 2:
                fan_in = tensor.shape[-1]
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / math.sqrt(fan_in))
            else:
                raise RuntimeError(f"no initialisation rule for {name} {tuple(tensor.shape)}")


def split_fused_experts(directory):
    """Rewrites fused expert tensors (if this transformers version saves them) with the
    original per-expert checkpoint names, so the fixture looks like a real checkpoint."""
    path = os.path.join(directory, "model.safetensors")
    tensors = load_file(path)
    fused = [k for k in tensors if k.endswith("experts.gate_up_proj") or k.endswith("experts.down_proj")]
    if not fused:
        return False
    out = {}
    for key, value in tensors.items():
        if key.endswith("experts.gate_up_proj"):  # [E, 2I, H]: gate rows then up rows
            prefix = key[: -len("gate_up_proj")]
            half = value.shape[1] // 2
            for e in range(value.shape[0]):
                out[f"{prefix}{e}.gate_proj.weight"] = value[e, :half].contiguous()
                out[f"{prefix}{e}.up_proj.weight"] = value[e, half:].contiguous()
        elif key.endswith("experts.down_proj"):  # [E, H, I]
            prefix = key[: -len("down_proj")]
            for e in range(value.shape[0]):
                out[f"{prefix}{e}.down_proj.weight"] = value[e].contiguous()
        else:
            out[key] = value
    save_file(out, path, metadata={"format": "pt"})
    return True


def record_reference(name, index, directory, reference_model, vocab_size, meta_extra):
    """Draws the prompts of PROMPT_LENGTHS and records, with `reference_model` (float32,
    eager attention), their logits and greedy continuations into directory/reference.*."""
    # No end-of-sequence stop: the continuation is always GREEDY_TOKENS long.
    reference_model.generation_config.eos_token_id = None
    reference_model.generation_config.pad_token_id = 0
    rotary = reference_model.model.rotary_emb
    attention = reference_model.model.layers[0].self_attn
    tensors = {"rope.inv_freq": rotary.inv_freq.detach().float().contiguous()}
    prompts = []
    token_generator = torch.Generator().manual_seed(2000 + index)
    for p, length in enumerate(PROMPT_LENGTHS):
        # A greedy continuation is only a meaningful reference when no step is a
        # near-tie: resample the prompt until every step's top-2 margin exceeds
        # MIN_MARGIN and the cached (generate) and uncached paths agree.
        for attempt in range(100):
            tokens = torch.randint(0, vocab_size, (1, length), generator=token_generator)
            with torch.no_grad():
                logits = reference_model(input_ids=tokens, use_cache=False).logits[0].float()
                generated = reference_model.generate(
                    tokens, max_new_tokens=GREEDY_TOKENS, do_sample=False, use_cache=True)[0, length:]
                assert generated.numel() == GREEDY_TOKENS
                sequence, margin = tokens, float("inf")
                for _ in range(GREEDY_TOKENS):
                    step = reference_model(input_ids=sequence, use_cache=False).logits[0, -1].float()
                    top = step.topk(2).values
                    margin = min(margin, float(top[0] - top[1]))
                    sequence = torch.cat([sequence, step.argmax().view(1, 1)], dim=1)
                uncached = sequence[0, length:]
            if margin >= MIN_MARGIN and torch.equal(generated, uncached):
                break
        else:
            raise RuntimeError(f"{name}: no prompt of length {length} without a near-tie")
        tensors[f"prompt_{p}.tokens"] = tokens[0].to(torch.int32).contiguous()
        tensors[f"prompt_{p}.logits"] = logits.contiguous()
        tensors[f"prompt_{p}.greedy"] = generated.to(torch.int32).contiguous()
        prompts.append({"length": length, "attempts": attempt + 1, "greedy_min_top2_margin": margin,
                        "logit_abs_max": float(logits.abs().max()), "logit_std": float(logits.std())})
    save_file(tensors, os.path.join(directory, "reference.safetensors"))
    meta = {
        "generator": meta_extra["generator"],
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "rope_attention_scaling": float(rotary.attention_scaling),
        "softmax_scale": float(attention.scaling),
    }
    meta.update({key: value for key, value in meta_extra.items() if key != "generator"})
    meta["prompts"] = prompts
    with open(os.path.join(directory, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(name, json.dumps(meta))


def check_reload(stored, reference_model):
    """The float32 model must hold exactly the stored values."""
    state = reference_model.state_dict()
    checked = 0
    for key, value in stored.items():
        if key in state:
            assert torch.equal(state[key], value.float()), f"{key} differs after reload"
            checked += 1
    assert checked > 0


def main(out_dir):
    torch.manual_seed(0)
    os.makedirs(out_dir, exist_ok=True)
    for index, (name, spec) in enumerate(MODELS.items()):
        directory = os.path.join(out_dir, name)
        generator = torch.Generator().manual_seed(1000 + index)
        config = make_config(spec)
        config._attn_implementation = "eager"
        model = DeepseekV3ForCausalLM(config).eval()
        reinitialise(model, generator)
        model = model.to(torch.bfloat16)
        model.save_pretrained(directory, safe_serialization=True)
        rewritten = split_fused_experts(directory)

        stored = load_file(os.path.join(directory, "model.safetensors"))
        assert all(t.dtype == torch.bfloat16 for t in stored.values()), "weights must be stored as bf16"
        reference_model = DeepseekV3ForCausalLM.from_pretrained(
            directory, dtype=torch.float32, attn_implementation="eager").eval()
        check_reload(stored, reference_model)
        record_reference(name, index, directory, reference_model, config.vocab_size,
                         {"generator": "tests/reference/make_fixtures.py", "fused_experts_rewritten": rewritten})
        print("  tensors:", sorted(stored)[:12], "...", len(stored))


if __name__ == "__main__":
    main(sys.argv[1])
