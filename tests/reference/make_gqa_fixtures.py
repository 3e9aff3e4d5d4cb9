#!/usr/bin/env python3
"""Builds the tiny grouped-query-attention reference models with Hugging Face transformers:
GLM-4.5/4.6/4.7 (Glm4MoeForCausalLM) and MiniMax-M2 (MiniMaxM2ForCausalLM).

The same recipe as make_fixtures.py (whose helpers it uses): build the model from its config,
re-initialise every weight so logits are O(1), round to bfloat16, save with save_pretrained
under the real checkpoints' tensor names, reload in float32 (eager attention, eager experts)
and record float32 logits for every position of prompts of 1 to 70 tokens, 16-token greedy
continuations without near-ties, the rotary inverse frequencies and the softmax scale.

Shapes: 8 query heads over 4 KV heads (groups of 2) of head_dim 32 with 16 rotated values
(partial rotary 0.5), so TP 2 and 4 divide the KV heads and the CUDA kernels' head_dim % 32
holds. Checked before recording:
  - the rotary table has rotary_dim / 2 frequencies (transformers 5.12-5.17 rotate whole
    MiniMax-M2 heads unless partial_rotary_factor is stated, huggingface/transformers#48241;
    the MiniMax fixture states it beside rotary_dim),
  - the saved tensor names are the real checkpoints' (per-expert gate_proj/up_proj/down_proj
    for GLM, block_sparse_moe.experts.E.w1/w3/w2 and block_sparse_moe.e_score_correction_bias
    for MiniMax); a fused save is rewritten to them.

Outputs per model under OUT/<name>/ as make_fixtures.py's.

Usage: python3 make_gqa_fixtures.py OUT_DIR [MODEL ...]   (runs on the CPU; takes seconds)
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import Glm4MoeConfig, Glm4MoeForCausalLM, MiniMaxM2Config, MiniMaxM2ForCausalLM

import make_fixtures

HEADS = dict(num_attention_heads=8, num_key_value_heads=4, head_dim=32)
COMMON = dict(vocab_size=512, hidden_size=64, max_position_embeddings=128, tie_word_embeddings=False,
              bos_token_id=0, eos_token_id=1, pad_token_id=None, **HEADS)
ROTARY_DIM = 16

MODELS = {
    # GLM-4.5/4.6/4.7: q/k/v biases, per-head q/k RMSNorm, half the head rotated, one dense
    # first layer, a shared expert, routed scaling 2.5.
    "glm4moe-qknorm-bias": ("glm4_moe", dict(
        COMMON,
        num_hidden_layers=3,
        intermediate_size=128,
        moe_intermediate_size=32,
        n_routed_experts=8,
        num_experts_per_tok=2,
        n_shared_experts=1,
        n_group=1,
        topk_group=1,
        norm_topk_prob=True,
        routed_scaling_factor=2.5,
        first_k_dense_replace=1,
        attention_bias=True,
        use_qk_norm=True,
        rms_norm_eps=1e-5,
        rope={"rope_type": "default", "rope_theta": 1000000.0, "partial_rotary_factor": ROTARY_DIM / 32},
    )),
    # GLM-4.5-Air: biases, no q/k norm; here also group-limited routing, unnormalised top-k
    # weights and MoE from layer 0 (fields the family's config carries).
    "glm4moe-air-groups": ("glm4_moe", dict(
        COMMON,
        num_hidden_layers=2,
        intermediate_size=128,
        moe_intermediate_size=32,
        n_routed_experts=8,
        num_experts_per_tok=3,
        n_shared_experts=1,
        n_group=4,
        topk_group=2,
        norm_topk_prob=False,
        routed_scaling_factor=1.0,
        first_k_dense_replace=0,
        attention_bias=True,
        use_qk_norm=False,
        rms_norm_eps=1e-5,
        rope={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": ROTARY_DIM / 32},
    )),
    # MiniMax-M2: q/k RMSNorm over all heads of a token, rotary_dim 16 of 32, every layer a
    # routed MoE (intermediate_size is the expert's), no shared expert, no biases.
    "minimax-m2-like": ("minimax_m2", dict(
        COMMON,
        num_hidden_layers=2,
        intermediate_size=32,
        num_local_experts=8,
        num_experts_per_tok=2,
        rms_norm_eps=1e-6,
        rotary_dim=ROTARY_DIM,
        # transformers 5.12-5.17 rotate whole MiniMax-M2 heads unless partial_rotary_factor says
        # otherwise (#48241); stating both keeps transformers on the model's rotary_dim.
        rope={"rope_type": "default", "rope_theta": 5000000.0, "partial_rotary_factor": ROTARY_DIM / 32},
    )),
}

CLASSES = {"glm4_moe": (Glm4MoeConfig, Glm4MoeForCausalLM), "minimax_m2": (MiniMaxM2Config, MiniMaxM2ForCausalLM)}

# A tensor the saved checkpoint must hold under exactly this name, per family.
EXPECTED_NAMES = {
    "glm4_moe": ["model.layers.1.mlp.experts.0.gate_proj.weight", "model.layers.1.mlp.gate.e_score_correction_bias",
                 "model.layers.0.self_attn.q_proj.bias"],
    "minimax_m2": ["model.layers.0.block_sparse_moe.experts.0.w1.weight",
                   "model.layers.0.block_sparse_moe.e_score_correction_bias",
                   "model.layers.0.self_attn.q_norm.weight"],
}


def make_config(family, spec):
    config_class = CLASSES[family][0]
    spec = dict(spec)
    rope = spec.pop("rope")
    try:  # transformers 5: rope_parameters holds the theta (and GLM's partial rotary factor)
        return config_class(rope_parameters=rope, **spec)
    except TypeError:
        extra = {"partial_rotary_factor": rope["partial_rotary_factor"]} if "partial_rotary_factor" in rope else {}
        return config_class(rope_theta=rope["rope_theta"], **extra, **spec)


def to_checkpoint_names(directory, family):
    """Rewrites fused expert tensors (if this transformers version saves them) with the real
    checkpoints' per-expert names; MiniMax's MoE block also goes back to block_sparse_moe."""
    if family == "glm4_moe":
        return make_fixtures.split_fused_experts(directory)
    path = os.path.join(directory, "model.safetensors")
    tensors = load_file(path)
    if not any(".mlp." in key for key in tensors):
        return False
    out = {}
    for key, value in tensors.items():
        if key.endswith("mlp.experts.gate_up_proj"):  # [E, 2I, H]: w1 (gate) rows then w3 (up) rows
            prefix = key[: -len("mlp.experts.gate_up_proj")] + "block_sparse_moe.experts."
            half = value.shape[1] // 2
            for e in range(value.shape[0]):
                out[f"{prefix}{e}.w1.weight"] = value[e, :half].contiguous()
                out[f"{prefix}{e}.w3.weight"] = value[e, half:].contiguous()
        elif key.endswith("mlp.experts.down_proj"):  # [E, H, I]
            prefix = key[: -len("mlp.experts.down_proj")] + "block_sparse_moe.experts."
            for e in range(value.shape[0]):
                out[f"{prefix}{e}.w2.weight"] = value[e].contiguous()
        else:
            out[key.replace(".mlp.", ".block_sparse_moe.")] = value
    save_file(out, path, metadata={"format": "pt"})
    return True


def load_reference(model_class, directory):
    kwargs = dict(dtype=torch.float32, attn_implementation="eager")
    try:  # transformers 5: the per-expert loop, not grouped_mm
        return model_class.from_pretrained(directory, experts_implementation="eager", **kwargs).eval()
    except TypeError:
        return model_class.from_pretrained(directory, **kwargs).eval()


def main(out_dir, names):
    torch.manual_seed(0)
    os.makedirs(out_dir, exist_ok=True)
    for index, (name, (family, spec)) in enumerate(MODELS.items()):
        if names and name not in names:
            continue
        directory = os.path.join(out_dir, name)
        generator = torch.Generator().manual_seed(3000 + index)
        config = make_config(family, spec)
        config._attn_implementation = "eager"
        model_class = CLASSES[family][1]
        model = model_class(config).eval()
        make_fixtures.reinitialise(model, generator)
        model = model.to(torch.bfloat16)
        model.save_pretrained(directory, safe_serialization=True)
        rewritten = to_checkpoint_names(directory, family)

        stored = load_file(os.path.join(directory, "model.safetensors"))
        for expected in EXPECTED_NAMES[family]:
            assert expected in stored, f"{name}: {expected} not saved; names: {sorted(stored)[:20]}"
        for key, value in stored.items():  # GLM keeps the correction bias in f32 (_keep_in_fp32_modules)
            assert value.dtype == torch.bfloat16 or key.endswith("e_score_correction_bias"), f"{key} is {value.dtype}"
        reference_model = load_reference(model_class, directory)
        make_fixtures.check_reload(stored, reference_model)
        q_rows = reference_model.model.layers[0].self_attn.q_proj.weight.shape[0]
        assert q_rows == HEADS["num_attention_heads"] * HEADS["head_dim"], f"{name}: head_dim not taken ({q_rows} q rows)"
        inv_freq = reference_model.model.rotary_emb.inv_freq
        assert inv_freq.numel() == ROTARY_DIM // 2, f"{name}: {inv_freq.numel()} rotary frequencies, not {ROTARY_DIM // 2}"
        make_fixtures.record_reference(name, index, directory, reference_model, config.vocab_size,
                                       {"generator": "tests/reference/make_gqa_fixtures.py",
                                        "fused_experts_rewritten": rewritten})
        print("  tensors:", sorted(stored)[:12], "...", len(stored))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
