#!/usr/bin/env python3
"""FP8 versions of the tiny DeepSeek-V3 fixtures, with Hugging Face reference logits.

The fixtures under tests/data/models/*-fp8-* come from this script (transformers 5.17,
torch 2.11, on the CPU; about 80 s). It is reproducible: a second run on 2026-12-05 wrote the
64-wide fixtures byte for byte as committed.

For each tiny model of make_fixtures.MODELS, and for FP8_ONLY_MODELS (dsv3-block128: 128-wide
widths in the real checkpoints' 128 x 128 blocks, which the CUDA FP8 kernels take), this script
  1. builds and re-initialises it exactly as make_fixtures.py does (bf16-rounded weights,
     per-expert checkpoint names) and saves it as OUT/<name>-bf16,
  2. quantizes every linear layer except the ones real FP8 checkpoints keep in bf16
     (lm_head, MoE router gates, embeddings, norms) the way the real checkpoints are made:
     scale = amax / 448 over the block or output row, weight = e4m3(clamp(w / scale, ±448))
     (round to nearest even), into
       OUT/<name>-fp8-block    DeepSeek `fp8`: F8_E4M3 `weight` + F32 `weight_scale_inv`
                               [ceil(out/16), in/16] (blocks of 16 x 16: the tiny widths are
                               not multiples of 128; the loader takes weight_block_size;
                               dsv3-block128: 128 x 128),
       OUT/<name>-fp8-channel  compressed-tensors float-quantized, strategy "channel":
                               F8_E4M3 `weight` + BF16 `weight_scale` [out, 1], dynamic
                               per-token activations,
  3. records reference logits in float32 for every position of each prompt:
       w8a16  transformers' FineGrainedFP8 integration loading the fp8-block checkpoint
              with FineGrainedFP8Config(dequantize=True) (its dequantization path; the FP8
              kernel path downloads kernels from the Hub, impossible on that machine; the
              flag's name comes from the transformers 5 quantizer's description, check it
              on the first run),
              cross-checked against our own dequantization loaded into a plain
              DeepseekV3ForCausalLM (must agree to 1e-5); for the channel format only our
              dequantization (transformers has no compressed-tensors loader without the
              compressed-tensors package),
       w8a8   the w8a16 model with the input of every quantized product quantized as the
              rackserve CPU oracle does (src/backend/cpu/fp8_linear.h): per token per
              16-column group (block) or per token (channel), scale = max(amax / 448,
              floor), e4m3 round-to-nearest-even with saturation; products in float32
              (kv_b_proj's input excepted: it is absorbed into the attention, see W8A8),
     plus a 16-token greedy continuation of the w8a16 model (generate, do_sample=False;
     prompts are redrawn until no greedy step is a near-tie, as make_fixtures.py does) and
     the cosine of w8a8 against w8a16 per prompt (reference.json).

Outputs per checkpoint directory: config.json, model.safetensors, reference.safetensors
(prompt_<i>.tokens I32, prompt_<i>.w8a16 F32 [len, vocab], prompt_<i>.w8a8 F32,
prompt_<i>.greedy I32 [16]) and reference.json.

Usage: python3 make_fp8_fixtures.py OUT_DIR [MODEL ...]   (default: every model; names as in
make_fixtures.MODELS and FP8_ONLY_MODELS, e.g. dsv3-block128)
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import DeepseekV3ForCausalLM

import make_fixtures

BLOCK = (16, 16)  # the 64-wide fixtures' weight_block_size
# Fixtures made only here, in the real checkpoints' 128 x 128 blocks, which the CUDA FP8 kernels
# take (every K a multiple of 128: hidden, q_lora, kv_lora, heads x v_head, the MLP widths), so
# the GPU tests run an FP8 block model with a transformers reference. Every FP8 weight is also a
# whole number of blocks in its rows (kv_a: kv_lora 128 + rope 128; q_b: 4 x (32 + 128)):
# transformers' Fp8Dequantize takes the block size from the scale grid (rows / scale rows), so
# a partial last block (DeepSeek-V3's kv_a_proj_with_mqa has 576 rows) would be dequantized with
# the wrong block there. Query compression: q_a and kv_a stack into one weight (128 + 256 rows).
FP8_ONLY_MODELS = {
    "dsv3-block128": dict(
        make_fixtures.COMMON,
        hidden_size=256,
        intermediate_size=256,
        moe_intermediate_size=128,
        kv_lora_rank=128,
        num_hidden_layers=2,
        q_lora_rank=128,
        qk_nope_head_dim=32,
        qk_rope_head_dim=128,
        v_head_dim=32,
        n_routed_experts=8,
        num_experts_per_tok=2,
        n_shared_experts=1,
        n_group=1,
        topk_group=1,
        norm_topk_prob=True,
        routed_scaling_factor=1.0,
        first_k_dense_replace=1,
        rope={"rope_type": "default", "rope_theta": 10000.0},
        rope_interleave=True,
    ),
}
BLOCKS = {"dsv3-block128": (128, 128)}  # weight_block_size per model; BLOCK where absent
E4M3_MAX = 448.0
BLOCK_MIN_SCALE = 1e-10 / E4M3_MAX            # vLLM per-token-group eps
TOKEN_MIN_SCALE = 1.0 / (E4M3_MAX * 512.0)    # vLLM dynamic per-token floor
PROMPT_LENGTHS = [1, 5, 33, 70]
GREEDY_TOKENS = 16
MIN_MARGIN = 1e-3  # smallest accepted gap between the best and second-best logit of a greedy step


def kept_in_bf16(name, tensor):
    """Like the real DeepSeek FP8 checkpoints: every projection (kv_a_proj_with_mqa included)
    is FP8; lm_head, the router gate, embeddings, norms and the MTP eh_proj stay bf16."""
    projection = name.endswith("_proj.weight") or name.endswith("_proj_with_mqa.weight")
    return tensor.dim() != 2 or not projection or name.endswith("eh_proj.weight")


def to_e4m3(x):
    return x.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def quantize_block(w, block):
    rows, cols = w.shape
    bo, bi = block
    assert cols % bi == 0, f"input width {cols} is not a multiple of {bi}"
    padded = torch.zeros(((rows + bo - 1) // bo) * bo, cols)
    padded[:rows] = w
    tiles = padded.view(-1, bo, cols // bi, bi)
    amax = tiles.abs().amax(dim=(1, 3))
    scale = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))
    q = to_e4m3(tiles / scale[:, None, :, None]).view(-1, cols)[:rows]
    return q, scale.float()


def quantize_channel(w):
    amax = w.abs().amax(dim=1, keepdim=True)
    scale = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax)).to(torch.bfloat16)
    return to_e4m3(w / scale.float()), scale


def dequantize(q, scale, layout, block):
    values = q.float()
    if layout == "channel":
        return values * scale.float()
    bo, bi = block
    expanded = scale.repeat_interleave(bo, 0)[: values.shape[0]].repeat_interleave(bi, 1)
    return values * expanded


def write_quantized(src, dst, layout, block):
    os.makedirs(dst, exist_ok=True)
    tensors = load_file(os.path.join(src, "model.safetensors"))
    out, dense = {}, {}
    for name, tensor in tensors.items():
        if kept_in_bf16(name, tensor):
            out[name] = tensor
            dense[name] = tensor.float()
            continue
        module = name[: -len(".weight")]
        if layout == "block":
            q, scale = quantize_block(tensor.float(), block)
            out[module + ".weight_scale_inv"] = scale
        else:
            q, scale = quantize_channel(tensor.float())
            out[module + ".weight_scale"] = scale
        out[name] = q
        dense[name] = dequantize(q, scale, layout, block)
    save_file(out, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    if layout == "block":
        config["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                         "weight_block_size": list(block)}
    else:
        config["quantization_config"] = {
            "quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
            "config_groups": {"group_0": {
                "targets": ["Linear"],
                "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True,
                            "dynamic": False},
                "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "symmetric": True,
                                      "dynamic": True}}}}
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return dense


def dense_model(src, dense):
    """A float32 DeepseekV3ForCausalLM holding the dequantized weights."""
    # Eager experts call F.linear once per expert, which W8A8 intercepts; the default CPU
    # backend (grouped_mm) would run the experts unquantized.
    model = DeepseekV3ForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager",
                                                  experts_implementation="eager")
    model.load_state_dict(make_fixtures_state(model, dense), strict=True)
    return model.eval()


def make_fixtures_state(model, dense):
    """Maps per-expert checkpoint tensors onto this transformers version's parameters
    (fused experts in transformers 5: gate_up_proj [E, 2I, H], down_proj [E, H, I])."""
    state = model.state_dict()
    for key in state:
        if key in dense:
            state[key] = dense[key]
        elif key.endswith("experts.gate_up_proj"):
            prefix = key[: -len("gate_up_proj")]
            state[key] = torch.stack([torch.cat([dense[f"{prefix}{e}.gate_proj.weight"],
                                                 dense[f"{prefix}{e}.up_proj.weight"]]) for e in range(state[key].shape[0])])
        elif key.endswith("experts.down_proj"):
            prefix = key[: -len("down_proj")]
            state[key] = torch.stack([dense[f"{prefix}{e}.down_proj.weight"] for e in range(state[key].shape[0])])
    return state


def quantize_activations(x, layout, group):
    if layout == "block":
        grouped = x.reshape(*x.shape[:-1], x.shape[-1] // group, group)
        scale = (grouped.abs().amax(-1, keepdim=True) / E4M3_MAX).clamp(min=BLOCK_MIN_SCALE)
        return (to_e4m3(grouped / scale).float() * scale).reshape(x.shape)
    scale = (x.abs().amax(-1, keepdim=True) / E4M3_MAX).clamp(min=TOKEN_MIN_SCALE)
    return to_e4m3(x / scale).float() * scale


class W8A8:
    """While active, F.linear quantizes its input whenever the weight belongs to a
    quantized parameter (nn.Linear layers and the fused expert tensors alike). kv_b_proj is
    the exception: serving engines (vLLM, SGLang, rackserve) dequantize it and absorb it into
    the attention (q_nope . W_UK, out . W_UV), so its input is never quantized."""

    def __init__(self, model, layout, group):
        self.layout, self.group = layout, group
        self.storages = {p.untyped_storage().data_ptr() for n, p in model.named_parameters()
                         if p.dim() >= 2 and "_proj" in n and "eh_proj" not in n and "kv_b_proj" not in n}
        self.original = torch.nn.functional.linear

    def __enter__(self):
        self.hits = set()

        def linear(x, weight, bias=None):
            storage = weight.untyped_storage().data_ptr()
            if storage in self.storages:
                self.hits.add(storage)
                x = quantize_activations(x.float(), self.layout, self.group)
            return self.original(x, weight, bias)
        torch.nn.functional.linear = linear
        return self

    def __exit__(self, *exc):
        torch.nn.functional.linear = self.original
        # Every quantized weight (each layer's fused experts included) must have gone through
        # the quantizing F.linear, or the reference would be partly W8A16.
        if exc[0] is None:
            assert self.hits == self.storages, f"{len(self.storages - self.hits)} quantized weights bypassed F.linear"


def logits_of(model, tokens):
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].float()


def greedy_without_near_ties(model, vocab_size, length, generator):
    """A prompt of `length` tokens whose greedy continuation has no step with a top-2 margin
    below MIN_MARGIN, the continuation (generate with the KV cache), and the smallest margin;
    the cached and uncached paths must agree."""
    model.generation_config.eos_token_id = None  # no end-of-sequence stop: always GREEDY_TOKENS long
    model.generation_config.pad_token_id = 0
    for _ in range(100):
        tokens = torch.randint(2, vocab_size, (1, length), generator=generator)
        with torch.no_grad():
            generated = model.generate(tokens, max_new_tokens=GREEDY_TOKENS, do_sample=False, use_cache=True)[0, length:]
            assert generated.numel() == GREEDY_TOKENS
            sequence, margin = tokens, float("inf")
            for _ in range(GREEDY_TOKENS):
                step = model(input_ids=sequence, use_cache=False).logits[0, -1].float()
                top = step.topk(2).values
                margin = min(margin, float(top[0] - top[1]))
                sequence = torch.cat([sequence, step.argmax().view(1, 1)], dim=1)
        if margin >= MIN_MARGIN and torch.equal(generated, sequence[0, length:]):
            return tokens[0].tolist(), generated, margin
    raise RuntimeError(f"no prompt of length {length} without a near-tie")


def differing_weights(a, b):
    """Names of the parameters of two models of one architecture whose values differ."""
    theirs = b.state_dict()
    return [name for name, value in a.state_dict().items()
            if name in theirs and not torch.equal(value.float(), theirs[name].float())]


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def main(out_dir, names):
    from transformers import FineGrainedFP8Config
    os.makedirs(out_dir, exist_ok=True)
    models = dict(make_fixtures.MODELS, **FP8_ONLY_MODELS)
    unknown = set(names) - set(models)
    if unknown:
        sys.exit(f"unknown models {sorted(unknown)}; known: {sorted(models)}")
    for name, spec in models.items():
        if names and name not in names:
            continue
        block = BLOCKS.get(name, BLOCK)
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(1234)
        config = make_fixtures.make_config(spec)
        model = DeepseekV3ForCausalLM(config)
        make_fixtures.reinitialise(model, generator)
        model = model.to(torch.bfloat16)
        src = os.path.join(out_dir, f"{name}-bf16")
        model.save_pretrained(src)
        make_fixtures.split_fused_experts(src)
        for layout in ("block", "channel"):
            dst = os.path.join(out_dir, f"{name}-fp8-{layout}")
            dense = write_quantized(src, dst, layout, block)
            ours = dense_model(src, dense)
            hf = None
            if layout == "block":
                hf = DeepseekV3ForCausalLM.from_pretrained(
                    dst, dtype=torch.float32, attn_implementation="eager",
                    quantization_config=FineGrainedFP8Config(dequantize=True)).eval()
            reference = hf if hf is not None else ours
            tensors = {}
            summary = {"generator": "tests/reference/make_fp8_fixtures.py", "transformers_version": transformers.__version__,
                       "torch_version": torch.__version__, "layout": layout, "block": list(block),
                       "w8a16_reference": "transformers FineGrainedFP8Config(dequantize=True)" if hf is not None
                       else "dequantized weights in DeepseekV3ForCausalLM", "prompts": []}
            for i, length in enumerate(PROMPT_LENGTHS):
                tokens, greedy, margin = greedy_without_near_ties(reference, config.vocab_size, length, generator)
                w8a16 = logits_of(ours, tokens)
                if hf is not None:
                    difference = (logits_of(hf, tokens) - w8a16).abs().max().item()
                    assert difference <= 1e-5, (f"{name} prompt {i}: transformers dequantization differs by "
                                                f"{difference}; weights that differ: {differing_weights(hf, ours)}")
                with W8A8(ours, layout, block[1]):
                    w8a8 = logits_of(ours, tokens)
                tensors[f"prompt_{i}.tokens"] = torch.tensor(tokens, dtype=torch.int32)
                tensors[f"prompt_{i}.w8a16"] = w8a16.contiguous()
                tensors[f"prompt_{i}.w8a8"] = w8a8.contiguous()
                tensors[f"prompt_{i}.greedy"] = greedy.to(torch.int32).contiguous()
                summary["prompts"].append({"length": len(tokens), "greedy_min_top2_margin": margin,
                                           "w8a8_cosine_vs_w8a16": cosine(w8a8, w8a16)})
            save_file(tensors, os.path.join(dst, "reference.safetensors"))
            with open(os.path.join(dst, "reference.json"), "w") as f:
                json.dump(summary, f, indent=2)
            print(name, layout, [round(p["w8a8_cosine_vs_w8a16"], 6) for p in summary["prompts"]])
        shutil.rmtree(src)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
