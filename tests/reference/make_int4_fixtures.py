#!/usr/bin/env python3
"""INT4 versions of the tiny Kimi-like BF16 fixtures, with Hugging Face reference logits.

Kimi-K2-Thinking / K2.5 ship their routed experts in compressed-tensors "pack-quantized" INT4
(symmetric, one bf16 scale per row per group of inputs) and keep everything else bf16. For each
source fixture (a BF16 directory written by make_fixtures.py; by default the two with query
compression and a shared expert, as Kimi-K2 has: kimi-like-yarn-mscale and
dsv3-qlora-yarn-groups, read from tests/data/models) this script
  1. quantizes every routed expert's gate_proj / up_proj / down_proj the way
     compressed-tensors' symmetric int4 does (tests/support/int4_checkpoint_writer.h has the
     same rule in C++):
       scale = bf16(amax / 7.5) per row per GROUP inputs (1 where the group is all zero),
       code  = clamp(round(w / scale), -8, 7)  (round half to even),
     stored as weight_packed I32 [rows, cols / 8] (column 8w + i in bits [4i, 4i + 4) of word
     w, as code + 8), weight_scale BF16 [rows, cols / GROUP], weight_shape I32 [2]; every
     other tensor is the source's, unchanged,
  2. writes OUT/<source>-int4-g<GROUP>/ with config.json = the source's plus Kimi-K2.5's
     quantization_config (int4_checkpoint_writer.h's kimi_int4_quantization_config: routed
     experts only; lm_head, self_attn, shared_experts and the dense MLPs ignored),
  3. records reference logits in float32 for every position of each prompt from the source's
     DeepseekV3ForCausalLM (eager attention, eager experts) holding the DEQUANTIZED weights
     (code x scale): W4A16, whose activations stay unquantized, so an INT4 model must
     reproduce it up to float32 summation order. transformers has no pack-quantized loader
     without the compressed-tensors package, so there is no second path to cross-check
     against; the packing is checked by unpacking what was written.
     Plus a 16-token greedy continuation (generate, do_sample=False; prompts redrawn until no
     greedy step is a near-tie, as make_fp8_fixtures.py does) and, per prompt, the cosine of
     W4A16 against the source's BF16 weights (the quantization noise; reference.json).

GROUP is 32 where it divides both hidden_size and moe_intermediate_size (the 64-wide fixtures:
64 and 32), else 16; it must be a multiple of 8 (whole packed words).

Outputs per checkpoint directory: config.json, model.safetensors, reference.safetensors
(prompt_<i>.tokens I32, prompt_<i>.w4a16 F32 [len, vocab], prompt_<i>.greedy I32 [16]) and
reference.json.

Usage: python3 make_int4_fixtures.py OUT_DIR [SOURCE ...]
  SOURCE: a BF16 fixture directory, or a name under tests/data/models (default:
  kimi-like-yarn-mscale dsv3-qlora-yarn-groups). Runs on the CPU in seconds.
"""
import json
import os
import re
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import DeepseekV3ForCausalLM

from make_fp8_fixtures import PROMPT_LENGTHS, cosine, dense_model, differing_weights, greedy_without_near_ties, logits_of

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "models")
DEFAULT_SOURCES = ["kimi-like-yarn-mscale", "dsv3-qlora-yarn-groups"]
ROUTED_EXPERT = re.compile(r".*\.mlp\.experts\.\d+\.(gate|up|down)_proj\.weight$")
INT4_MIN, INT4_MAX = -8, 7
INT4_HALF_RANGE = (INT4_MAX - INT4_MIN) / 2  # 7.5: compressed-tensors' symmetric scale divisor


def kimi_int4_quantization_config(group):
    """Kimi-K2.5's quantization_config (as kimi_int4_quantization_config in
    tests/support/int4_checkpoint_writer.h, attention unquantized)."""
    return {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "ignore": ["lm_head", "re:.*shared_experts.*", r"re:.*mlp\.(gate|up|gate_up|down)_proj.*", "re:.*self_attn.*"],
        "kv_cache_scheme": None,
        "config_groups": {"group_0": {
            "targets": ["Linear"],
            "input_activations": None,
            "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": group, "symmetric": True,
                        "dynamic": False}}},
    }


def ignored(module, ignore):
    """Whether `module` is in the ignore list: "re:" entries as Python re.match, others the
    module itself or its trailing path (as transformers applies modules_to_not_convert)."""
    for entry in ignore:
        if entry.startswith("re:"):
            if re.match(entry[3:], module):
                return True
        elif module == entry or module.endswith("." + entry):
            return True
    return False


def choose_group(config):
    widths = (config["hidden_size"], config["moe_intermediate_size"])
    for group in (32, 16):
        if all(width % group == 0 for width in widths):
            return group
    sys.exit(f"no INT4 group (32 or 16) divides hidden_size and moe_intermediate_size {widths}")


def quantize_int4(w, group):
    """Codes (int64 in [-8, 7]) and bf16 scales [rows, cols / group] of a float32 weight."""
    rows, cols = w.shape
    assert cols % group == 0 and group % 8 == 0, f"input width {cols}, group {group}"
    grouped = w.view(rows, cols // group, group)
    amax = grouped.abs().amax(dim=-1)
    scale = torch.where(amax > 0, amax / INT4_HALF_RANGE, torch.ones_like(amax)).to(torch.bfloat16)
    codes = torch.round(grouped / scale.float()[..., None]).clamp(INT4_MIN, INT4_MAX).to(torch.int64)
    return codes.view(rows, cols), scale


def pack_int4(codes):
    """compressed-tensors' pack_to_int32: column 8w + i in bits [4i, 4i + 4) of word w, as code + 8."""
    rows, cols = codes.shape
    nibbles = (codes + 8).view(rows, cols // 8, 8)
    words = (nibbles << (4 * torch.arange(8, dtype=torch.int64))).sum(dim=-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def unpack_int4(packed):
    words = packed.to(torch.int64) & 0xFFFFFFFF
    nibbles = (words[..., None] >> (4 * torch.arange(8, dtype=torch.int64))) & 0xF
    return nibbles.view(packed.shape[0], -1) - 8


def dequantize_int4(codes, scale, group):
    return codes.float() * scale.float().repeat_interleave(group, dim=1)


def write_int4(src, dst, group):
    """Writes the INT4 checkpoint; returns the checkpoint's tensors as float32 with every INT4
    weight dequantized, and the number of modules quantized."""
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    assert "quantization_config" not in config, f"{src} is already quantized"
    quantization = kimi_int4_quantization_config(group)
    config["quantization_config"] = quantization
    tensors = load_file(os.path.join(src, "model.safetensors"))
    out, dense, quantized = {}, {}, 0
    for name, tensor in tensors.items():
        assert tensor.dtype == torch.bfloat16, f"{src}: {name} is {tensor.dtype}, expected a bf16 source"
        module = name[: -len(".weight")]
        projection = tensor.dim() == 2 and (name.endswith("_proj.weight") or name.endswith("_proj_with_mqa.weight"))
        if not ROUTED_EXPERT.match(name):
            # The config must leave exactly the routed experts quantized.
            assert not projection or ignored(module, quantization["ignore"]), f"{module} is not ignored"
            out[name] = tensor
            dense[name] = tensor.float()
            continue
        assert not ignored(module, quantization["ignore"]), f"routed expert {module} is ignored"
        codes, scale = quantize_int4(tensor.float(), group)
        packed = pack_int4(codes)
        assert torch.equal(unpack_int4(packed), codes), f"{module}: packing does not round-trip"
        out[module + ".weight_packed"] = packed.contiguous()
        out[module + ".weight_scale"] = scale.contiguous()
        out[module + ".weight_shape"] = torch.tensor(list(tensor.shape), dtype=torch.int32)
        dense[name] = dequantize_int4(codes, scale, group)
        quantized += 1
    assert quantized > 0, f"{src}: no routed experts"
    os.makedirs(dst, exist_ok=True)
    save_file(out, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return dense, quantized


def main(out_dir, sources):
    os.makedirs(out_dir, exist_ok=True)
    for index, source in enumerate(sources or DEFAULT_SOURCES):
        src = source if os.path.isdir(source) else os.path.join(MODELS_DIR, source)
        name = os.path.basename(os.path.normpath(src))
        with open(os.path.join(src, "config.json")) as f:
            source_config = json.load(f)
        group = choose_group(source_config)
        dst = os.path.join(out_dir, f"{name}-int4-g{group}")
        dense, quantized = write_int4(src, dst, group)
        ours = dense_model(src, dense)  # the source's model with the dequantized weights (W4A16)
        bf16 = DeepseekV3ForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager",
                                                     experts_implementation="eager").eval()
        changed = differing_weights(ours, bf16)
        assert changed and all(".mlp.experts." in n for n in changed), f"{name}: weights that differ: {changed}"
        generator = torch.Generator().manual_seed(5000 + index)
        tensors = {}
        summary = {"generator": "tests/reference/make_int4_fixtures.py", "transformers_version": transformers.__version__,
                   "torch_version": torch.__version__, "source": name, "format": "pack-quantized", "group": group,
                   "int4_modules": quantized, "w4a16_reference": "dequantized weights in DeepseekV3ForCausalLM",
                   "prompts": []}
        vocab_size = source_config["vocab_size"]
        for i, length in enumerate(PROMPT_LENGTHS):
            tokens, greedy, margin = greedy_without_near_ties(ours, vocab_size, length, generator)
            w4a16 = logits_of(ours, tokens)
            tensors[f"prompt_{i}.tokens"] = torch.tensor(tokens, dtype=torch.int32)
            tensors[f"prompt_{i}.w4a16"] = w4a16.contiguous()
            tensors[f"prompt_{i}.greedy"] = greedy.to(torch.int32).contiguous()
            summary["prompts"].append({"length": len(tokens), "greedy_min_top2_margin": margin,
                                       "w4a16_cosine_vs_bf16": cosine(w4a16, logits_of(bf16, tokens))})
        save_file(tensors, os.path.join(dst, "reference.safetensors"))
        with open(os.path.join(dst, "reference.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(os.path.basename(dst), quantized, "INT4 modules; W4A16 cosine vs bf16",
              [round(p["w4a16_cosine_vs_bf16"], 6) for p in summary["prompts"]])


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
