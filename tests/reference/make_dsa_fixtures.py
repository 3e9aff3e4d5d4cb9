#!/usr/bin/env python3
"""Builds the tiny DeepSeek-sparse-attention (DSA) reference models with Hugging Face
transformers: GLM-5 (GlmMoeDsaForCausalLM, glm_moe_dsa) and DeepSeek-V3.2
(DeepseekV32ForCausalLM, deepseek_v32).

The same recipe as make_fixtures.py (whose helpers it uses): build the model from its config,
re-initialise every weight so logits are O(1), round to bfloat16, save with save_pretrained
under the real checkpoints' tensor names, reload in float32 (eager attention, eager experts)
and record float32 logits for every position of prompts of 1 to 70 tokens, 16-token greedy
continuations without near-ties, the rotary inverse frequencies and the softmax scale.

Shapes: MLA with query compression (4 heads) and the lightning indexer of 8 heads of 32 values
(the leading qk_rope_head_dim = 16 rotated) keeping index_topk = 16 key positions: the
prompts of 33 to 70 tokens make the indexer choose, those of 1 and 5 tokens fit in its
choice (their continuations go past it). Every layer runs its own indexer ("full"; rackserve refuses the
"shared" layers of GLM-5's later schedules). GLM-5 rotates the indexer's pairs interleaved,
DeepSeek-V3.2 half-split.

Checked before a fixture is kept:
  - the saved tensor names are exactly the real checkpoints' (MLA projections, the indexer's
    wq_b / wk / k_norm (a LayerNorm: weight and bias) / weights_proj, per-expert
    gate_proj/up_proj/down_proj; a fused save is rewritten to them), stored as bf16 (the
    score-correction bias may stay f32),
  - no indexer near-tie: the top-k choice is only a meaningful reference when it does not
    hang on float rounding. Every query of every recorded sequence (prompt + continuation)
    that has more than index_topk causal keys is scored again from the indexer's own inputs
    (see capture_indexer_scores); the gap between its k-th and (k+1)-th best score must be at least
    MIN_INDEX_GAP of its largest |score|. Otherwise the model is rebuilt from the next weight
    seed (reference.json: weight_seed, indexer_guard). The recomputed choice must also be
    transformers' own wherever the gap is clear, which pins the score formula and RoPE layout
    the C++ indexer implements (src/backend/cpu/dsa_ops.cpp) to transformers' behaviour.

Outputs per model under OUT/<name>/ as make_fixtures.py's.

Usage: python3 make_dsa_fixtures.py OUT_DIR [MODEL ...]   (runs on the CPU; each weight seed takes
seconds; by a rough estimate about 1 in 6 is free of indexer near-ties at these sizes)
"""
import contextlib
import dataclasses
import inspect
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import DeepseekV32Config, DeepseekV32ForCausalLM, GlmMoeDsaConfig, GlmMoeDsaForCausalLM

import make_fixtures

INDEX_TOPK = 16
MIN_INDEX_GAP = 1e-4  # smallest accepted (k-th - (k+1)-th best index score) / max |score| of a query
WEIGHT_SEED_BASE = 4000  # model i tries weight seeds WEIGHT_SEED_BASE + 100 * i + attempt
MAX_WEIGHT_SEEDS = 100

COMMON = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    moe_intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    kv_lora_rank=32,
    qk_rope_head_dim=16,
    n_routed_experts=8,
    num_experts_per_tok=2,
    n_shared_experts=1,
    norm_topk_prob=True,
    routed_scaling_factor=2.5,
    first_k_dense_replace=1,
    index_n_heads=8,
    index_head_dim=32,
    index_topk=INDEX_TOPK,
    max_position_embeddings=128,
    tie_word_embeddings=False,
    attention_bias=False,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=None,
)

MODELS = {
    # GLM-5: interleaved RoPE in the attention and in the indexer (both stated), a single
    # expert group, one dense first layer, a shared expert, routed scaling 2.5.
    "glm5-dsa-tiny": ("glm_moe_dsa", dict(
        COMMON,
        q_lora_rank=48,
        qk_nope_head_dim=32,
        v_head_dim=32,
        n_group=1,
        topk_group=1,
        rms_norm_eps=1e-5,
        rope={"rope_type": "default", "rope_theta": 1000000.0},
        rope_interleave=True,
        indexer_rope_interleave=True,
    )),
    # DeepSeek-V3.2: interleaved RoPE in the attention, half-split in the indexer (neither
    # stated: transformers' DeepseekV32 has no switch), two expert groups of which one is
    # kept, v_head_dim != qk_nope_head_dim.
    "dsv32-dsa-tiny": ("deepseek_v32", dict(
        COMMON,
        q_lora_rank=32,
        qk_nope_head_dim=32,
        v_head_dim=24,
        n_group=2,
        topk_group=1,
        rms_norm_eps=1e-6,
        rope={"rope_type": "default", "rope_theta": 10000.0},
    )),
}

CLASSES = {"glm_moe_dsa": (GlmMoeDsaConfig, GlmMoeDsaForCausalLM),
           "deepseek_v32": (DeepseekV32Config, DeepseekV32ForCausalLM)}

# The tensors of one attention layer as the real checkpoints name them (under self_attn.).
MLA_TENSORS = ["q_a_proj.weight", "q_a_layernorm.weight", "q_b_proj.weight", "kv_a_proj_with_mqa.weight",
               "kv_a_layernorm.weight", "kv_b_proj.weight", "o_proj.weight"]
INDEXER_TENSORS = ["indexer.wq_b.weight", "indexer.wk.weight", "indexer.k_norm.weight", "indexer.k_norm.bias",
                   "indexer.weights_proj.weight"]
PROJECTIONS = ["gate_proj", "up_proj", "down_proj"]


def config_fields(config_class):
    """The arguments `config_class` declares (transformers 5 configs are dataclasses)."""
    try:
        return {field.name for field in dataclasses.fields(config_class)}
    except TypeError:
        return set(inspect.signature(config_class.__init__).parameters)


def make_config(family, spec):
    config_class = CLASSES[family][0]
    spec = dict(spec)
    rope = spec.pop("rope")
    # Every layer runs its own indexer; configs that know per-layer indexer kinds are told so
    # rather than left to derive them (GLM-5's derive "shared" layers from index_topk_freq).
    if "indexer_types" in config_fields(config_class):
        spec["indexer_types"] = ["full"] * spec["num_hidden_layers"]
    try:  # transformers 5: rope_parameters holds the theta
        config = config_class(rope_parameters=rope, **spec)
    except TypeError:
        config = config_class(rope_theta=rope["rope_theta"], **spec)
    kinds = getattr(config, "indexer_types", None) or []
    assert all(kind == "full" for kind in kinds), f"{family}: indexer_types {kinds} are not all full"
    return config


def rope_layouts(saved):
    """(attention, indexer) RoPE pairs interleaved?, as the C++ config reader takes them from
    a config.json (src/config/model_config.cpp): rope_interleave, default true;
    indexer_rope_interleave, default true except for deepseek_v32 (half-split)."""
    return (bool(saved.get("rope_interleave", True)),
            bool(saved.get("indexer_rope_interleave", saved["model_type"] != "deepseek_v32")))


def round_to_bf16(directory):
    """Rewrites any float32 tensor (a module transformers keeps in f32, e.g. the indexer's
    weights_proj) as bf16, as the real checkpoints store it; the score-correction bias stays
    as saved. Returns the names rewritten."""
    path = os.path.join(directory, "model.safetensors")
    tensors = load_file(path)
    rounded = [key for key, value in tensors.items()
               if value.dtype == torch.float32 and not key.endswith("e_score_correction_bias")]
    if rounded:
        for key in rounded:
            tensors[key] = tensors[key].to(torch.bfloat16).contiguous()
        save_file(tensors, path, metadata={"format": "pt"})
    return rounded


def expected_tensor_names(spec):
    """Every tensor the saved checkpoint must hold, under the real checkpoints' names."""
    names = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for layer in range(spec["num_hidden_layers"]):
        prefix = f"model.layers.{layer}."
        names |= {prefix + "input_layernorm.weight", prefix + "post_attention_layernorm.weight"}
        names |= {prefix + "self_attn." + tensor for tensor in MLA_TENSORS + INDEXER_TENSORS}
        if layer < spec["first_k_dense_replace"]:
            names |= {f"{prefix}mlp.{projection}.weight" for projection in PROJECTIONS}
            continue
        names |= {prefix + "mlp.gate.weight", prefix + "mlp.gate.e_score_correction_bias"}
        names |= {f"{prefix}mlp.shared_experts.{projection}.weight" for projection in PROJECTIONS}
        names |= {f"{prefix}mlp.experts.{expert}.{projection}.weight"
                  for expert in range(spec["n_routed_experts"]) for projection in PROJECTIONS}
    return names


def check_checkpoint(name, family, spec, directory, stored):
    expected = expected_tensor_names(spec)
    missing, extra = sorted(expected - set(stored)), sorted(set(stored) - expected)
    assert not missing and not extra, f"{name}: tensors missing {missing[:10]}, unexpected {extra[:10]}"
    for key, value in stored.items():
        assert value.dtype == torch.bfloat16 or key.endswith("e_score_correction_bias"), f"{key} is {value.dtype}"
    with open(os.path.join(directory, "config.json")) as f:
        saved = json.load(f)
    assert saved.get("index_topk") == INDEX_TOPK, f"{name}: config.json index_topk {saved.get('index_topk')}"
    kinds = saved.get("indexer_types") or []
    assert all(kind == "full" for kind in kinds), f"{name}: config.json indexer_types {kinds}"
    assert saved.get("model_type") == family, f"{name}: config.json model_type {saved.get('model_type')}"
    # transformers 5 rotates the attention's pairs interleaved in both families, the indexer's
    # interleaved for GLM-5 and half-split for V3.2; the file must make rackserve do the same.
    expected = (True, family != "deepseek_v32")
    assert rope_layouts(saved) == expected, f"{name}: config.json reads as RoPE layouts {rope_layouts(saved)}"


def load_reference(model_class, directory):
    kwargs = dict(dtype=torch.float32, attn_implementation="eager")
    try:  # transformers 5: the per-expert loop, not grouped_mm
        return model_class.from_pretrained(directory, experts_implementation="eager", **kwargs).eval()
    except TypeError:
        return model_class.from_pretrained(directory, **kwargs).eval()


def indexer_modules(model):
    """(name, module) of every layer's indexer, in layer order."""
    return [(name, module) for name, module in model.named_modules() if name.endswith(".self_attn.indexer")]


def check_reference_model(name, spec, reference_model):
    indexers = indexer_modules(reference_model)
    assert len(indexers) == spec["num_hidden_layers"], f"{name}: {len(indexers)} indexers for " \
                                                       f"{spec['num_hidden_layers']} layers"
    inv_freq = reference_model.model.rotary_emb.inv_freq
    rope_dim = spec["qk_rope_head_dim"]
    assert inv_freq.numel() == rope_dim // 2, f"{name}: {inv_freq.numel()} rotary frequencies, not {rope_dim // 2}"


def rotate(x, cos, sin, interleaved):
    """RoPE on x [..., rope_dim] with transformers' cos/sin (cat(freqs, freqs)). Interleaved
    pairs are (x0, x1), (x2, x3), ..., half-split ones (x_i, x_{i + rope_dim / 2}). Interleaved
    values come back half-split, as transformers returns them: queries and keys share the
    layout, so their dot products are those of the interleaved rotation."""
    if interleaved:
        x = torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def index_scores(module, config, interleaved, hidden_states, q_resid, position_embeddings):
    """index_score [S, S] (query, key; causal mask not applied) of one uncached sequence,
    recomputed from an indexer's inputs and weights as transformers defines it:
      q = wq_b(q_resid) per head, k = k_norm(wk(x)) (LayerNorm), RoPE (pairs `interleaved` or
      half-split) on the leading qk_rope_head_dim values of both, score = sum_h
      weights_proj(x)[h] * n_heads^-0.5 * relu(q_h . k * head_dim^-0.5), in float32."""
    heads, width, rope_dim = config.index_n_heads, config.index_head_dim, config.qk_rope_head_dim
    batch, seq, _ = hidden_states.shape
    assert batch == 1, "the indexer check runs one sequence at a time"
    cos, sin = (t.float().reshape(seq, -1) for t in position_embeddings)
    q = module.wq_b(q_resid).float().view(seq, heads, width)
    k = module.k_norm(module.wk(hidden_states)).float().view(seq, width)
    q = torch.cat([rotate(q[..., :rope_dim], cos[:, None], sin[:, None], interleaved), q[..., rope_dim:]], dim=-1)
    k = torch.cat([rotate(k[..., :rope_dim], cos, sin, interleaved), k[..., rope_dim:]], dim=-1)
    scores = torch.relu(torch.einsum("shd,td->sht", q, k) * width ** -0.5)
    weights = module.weights_proj(hidden_states).float().view(seq, heads) * heads ** -0.5
    return torch.einsum("sht,sh->st", scores, weights)


@contextlib.contextmanager
def capture_indexer_scores(model, config, interleaved):
    """While active, every indexer call appends (module name, index_score [S, S], transformers'
    top-k indices [S, k]) to the yielded list.

    The scores are recomputed in a forward hook from the call's own inputs (hidden_states,
    q_resid, position_embeddings) and the module's weights, rather than taken from inside
    transformers (a torch.topk patch would also see the MoE routers' top-k, and the indexer's
    internals differ between transformers versions); the hook's inputs and output are part of
    the module's interface. Comparing the recomputed choice with the output the hook also
    sees confirms the recomputation. Uncached calls only: the keys must be the call's own."""
    calls = []

    def make_hook(name):
        def hook(module, args, kwargs, output):
            arguments = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
            if arguments.get("past_key_values") is not None or arguments.get("use_cache"):
                raise RuntimeError(f"{name}: a cached indexer call; the check runs uncached forwards only")
            if not (torch.is_tensor(output) and not output.is_floating_point() and output.dim() == 3):
                raise RuntimeError(f"{name}: indexer output {type(output)} is not [B, S, k] top-k indices")
            with torch.no_grad():
                scores = index_scores(module, config, interleaved, arguments["hidden_states"],
                                      arguments["q_resid"], arguments["position_embeddings"])
            calls.append((name, scores, output[0].long()))
        return hook

    handles = [module.register_forward_hook(make_hook(name), with_kwargs=True)
               for name, module in indexer_modules(model)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def boundary_gaps(scores, chosen, top_k):
    """(query, relative gap, same choice) for every query with more than top_k causal keys:
    the gap between its top_k-th and (top_k+1)-th best score over its largest |score|, and
    whether the recomputed top-k set is transformers' `chosen`."""
    gaps = []
    for query in range(top_k, scores.shape[0]):  # query i sees keys 0..i
        row = scores[query, : query + 1]
        values, order = row.topk(top_k + 1)
        scale = max(float(row.abs().max()), 1e-30)
        gap = float(values[top_k - 1] - values[top_k]) / scale
        same = set(order[:top_k].tolist()) == set(chosen[query].tolist())
        gaps.append((query, gap, same))
    return gaps


def indexer_guard(name, reference_model, config, directory):
    """Runs every recorded sequence (prompt + greedy continuation but its last token, i.e.
    every query the reference computed) uncached and checks each indexer choice (see the
    module docstring). Returns the smallest relative gap and where it is."""
    reference = load_file(os.path.join(directory, "reference.safetensors"))
    with open(os.path.join(directory, "config.json")) as f:
        interleaved = rope_layouts(json.load(f))[1]  # the indexer's layout as rackserve reads it
    top_k = config.index_topk
    checked, worst = 0, None
    with capture_indexer_scores(reference_model, config, interleaved) as calls:
        prompt = 0
        while f"prompt_{prompt}.tokens" in reference:
            tokens = reference[f"prompt_{prompt}.tokens"].long()
            greedy = reference[f"prompt_{prompt}.greedy"].long()
            sequence = torch.cat([tokens, greedy[:-1]]).view(1, -1)
            calls.clear()
            with torch.no_grad():
                reference_model(input_ids=sequence, use_cache=False)
            assert len(calls) == config.num_hidden_layers, f"{name}: {len(calls)} indexer calls"
            for layer, scores, chosen in calls:
                for query, gap, same in boundary_gaps(scores, chosen, top_k):
                    checked += 1
                    if gap >= MIN_INDEX_GAP and not same:
                        raise RuntimeError(f"{name}: {layer}, prompt {prompt}, query {query}: the recomputed "
                                           "top-k differs from transformers' (score formula or RoPE layout)")
                    if worst is None or gap < worst["relative_gap"]:
                        worst = {"relative_gap": gap, "prompt": prompt, "layer": layer, "query": query}
            prompt += 1
    assert checked > 0, f"{name}: no query had more than {top_k} keys"
    return {"queries_checked": checked, "min_relative_gap": worst["relative_gap"], "threshold": MIN_INDEX_GAP,
            "closest": worst}


def build(name, family, spec, directory, seed):
    """Builds the model from weight seed `seed`, saves it as a checkpoint under `directory`
    and returns the float32 reference model reloaded from it and what the save rewrote."""
    if os.path.isdir(directory):
        shutil.rmtree(directory)  # an earlier seed's files
    config = make_config(family, spec)
    config._attn_implementation = "eager"
    model_class = CLASSES[family][1]
    model = model_class(config).eval()
    make_fixtures.reinitialise(model, torch.Generator().manual_seed(seed))
    model = model.to(torch.bfloat16)
    model.save_pretrained(directory, safe_serialization=True)
    rewritten = make_fixtures.split_fused_experts(directory)
    rounded = round_to_bf16(directory)

    stored = load_file(os.path.join(directory, "model.safetensors"))
    check_checkpoint(name, family, spec, directory, stored)
    reference_model = load_reference(model_class, directory)
    make_fixtures.check_reload(stored, reference_model)
    check_reference_model(name, spec, reference_model)
    print("  tensors:", sorted(stored)[:12], "...", len(stored))
    return reference_model, {"fused_experts_rewritten": rewritten, "rounded_to_bf16": rounded}


def make_model(name, index, family, spec, directory):
    """Records the fixture from the first weight seed without an indexer near-tie; returns
    its summary."""
    for attempt in range(MAX_WEIGHT_SEEDS):
        seed = WEIGHT_SEED_BASE + 100 * index + attempt
        reference_model, rewrites = build(name, family, spec, directory, seed)
        config = reference_model.config
        make_fixtures.record_reference(name, index, directory, reference_model, config.vocab_size,
                                       {"generator": "tests/reference/make_dsa_fixtures.py", "weight_seed": seed,
                                        **rewrites})
        guard = indexer_guard(name, reference_model, config, directory)
        if guard["min_relative_gap"] >= MIN_INDEX_GAP:
            break
        print(f"{name}: weight seed {seed}: indexer near-tie {guard['closest']}; next seed")
    else:
        raise RuntimeError(f"{name}: every one of {MAX_WEIGHT_SEEDS} weight seeds has an indexer near-tie")
    meta_path = os.path.join(directory, "reference.json")
    with open(meta_path) as f:
        meta = json.load(f)
    meta["indexer_guard"] = dict(guard, weight_seeds_tried=attempt + 1)
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    print(name, "indexer guard:", json.dumps(meta["indexer_guard"]))
    return (f"{name} seed {seed} ({attempt + 1} tried), {guard['queries_checked']} indexer choices, "
            f"min gap {guard['min_relative_gap']:.1e}")


def main(out_dir, names):
    lengths = make_fixtures.PROMPT_LENGTHS
    assert min(lengths) < INDEX_TOPK < max(lengths), "prompts must be both shorter and longer than index_topk"
    torch.manual_seed(0)
    os.makedirs(out_dir, exist_ok=True)
    summaries = []
    for index, (name, (family, spec)) in enumerate(MODELS.items()):
        if names and name not in names:
            continue
        summaries.append(make_model(name, index, family, spec, os.path.join(out_dir, name)))
    print("make_dsa_fixtures:", "; ".join(summaries) if summaries else "no model selected")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
