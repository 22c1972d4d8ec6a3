#!/usr/bin/env bash
# The GPU half of the refiner-speed benchmarks in one call on a CUDA machine, from the repository root:
# the Triton kernels' tests, a sweep of their tile sizes, then `bench kernels`, `bench official`
# and `bench throughput` (Triton kernels on and off). Every report is written as JSON
# to $OUT (default gpu-results/), the reports results/baselines/gpu.json keeps; a summary is printed last.
# Runs on the machine's own PyTorch without installing the project (it needs torch, timm, typer, rich and
# pydantic): the checkout's packages are imported through a mirror of the installed layout (refiner_nas._checkout).
set -uo pipefail
out="${OUT:-gpu-results}"
mkdir -p "$out"
site=$(python3 -m refiner_nas._checkout build/checkout) || exit 1
export PYTHONUNBUFFERED=1 PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
bench() {
  local name=$1
  shift
  echo "== bench $*"
  timeout 240 python -c 'import sys; from refiner_nas.cli.bench import bench_app; bench_app(prog_name="refiner-nas bench")' \
    "$@" --json >"$out/$name.json" 2>"/tmp/$name.err" || { echo "failed: $name"; tail -5 "/tmp/$name.err"; }
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python -c 'import torch, triton, timm; print("torch", torch.__version__, "triton", triton.__version__, "timm", timm.__version__)'
timeout 120 python -m pytest -q -p no:cacheprovider tests/refiner_space/test_triton_chain.py 2>&1 | tail -4

echo "== tile sizes (Refined-ViT-S maps, batch 64, bf16)"
timeout 150 python - <<'PY'
import torch, triton.testing
from refiner_nas.refiner_space.layers import triton_chain
from refiner_nas.refiner_space.layers.chunks import refine_in_chunks
from refiner_nas.refiner_space.layers.official import OfficialMapRefiner
torch.manual_seed(0)
refiner = OfficialMapRefiner(12, head_dim=32).cuda().eval()
maps = torch.rand(64, 12, 197, 197, device="cuda").softmax(-1).bfloat16()
chain = refiner.folded_chain()
kernel = torch.randn(12, 12, 3, 3, device="cuda")
torch.set_grad_enabled(False)
want_released = refine_in_chunks(maps, chain).double()
want_dense = torch.nn.functional.conv2d(maps.float(), kernel, padding=1).double()
def error(out, want):
    return ((out.double() - want).norm() / want.norm()).item()
for block in (32, 64, 128):
    triton_chain.RELEASED_BLOCK = triton_chain.DENSE_BLOCK = block
    released = triton.testing.do_bench(lambda: triton_chain.released_chain(maps, chain), return_mode="median")
    dense = triton.testing.do_bench(lambda: triton_chain.dense_conv(maps, kernel), return_mode="median")
    print(f"block {block}: released {released:.3f} ms err {error(triton_chain.released_chain(maps, chain), want_released):.1e}, "
          f"dense {dense:.3f} ms err {error(triton_chain.dense_conv(maps, kernel), want_dense):.1e}")
PY

bench kernels_bf16 kernels --device cuda --batch-size 64 --dtype bf16 --compile
bench kernels_fp32 kernels --device cuda --batch-size 64 --dtype fp32 --compile
bench official_bf16 official --device cuda --amp bf16 --batch-size 64 --iters 20
for triton in triton no-triton; do
  bench "throughput_bf16_$triton" throughput refined_vit_s refined_vit_16b_384 --device cuda --amp bf16 \
    --channels-last --fold --batch-size 64 --mode inference --iters 20 "--$triton"
done
bench official_fp32 official --device cuda --batch-size 64 --iters 20

python - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def load(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() and path.stat().st_size else None
def spread(stats, spec=".2f"):
    return f"{stats['median']:{spec}} [{stats['q1']:{spec}}-{stats['q3']:{spec}}]"
for name in ("kernels_bf16", "kernels_fp32"):
    if report := load(name):
        print(f"{name}: copy {report['copy_gb_per_s']['median']:.0f} GB/s")
        for row in report["rows"]:
            print(f"  {row['chain']:8} {row['implementation']:9} {spread(row['ms'], '.3f')} ms "
                  f"{row['gb_per_s']['median']:7.0f} GB/s ratio {spread(row['ratio_to_modules'])} err {row['error']:.1e}")
for name in ("official_bf16", "official_fp32"):
    if report := load(name):
        for row in report["rows"]:
            print(f"{name} {row['model']}: inference {spread(row['inference_ratio'])} "
                  f"({row['inference_ms']['median']:.2f} vs {row['reference_inference_ms']['median']:.2f} ms), "
                  f"train chain {spread(row['train_chain_ratio'])}, err {row['inference_error']:.1e}")
for name in ("throughput_bf16_triton", "throughput_bf16_no-triton"):
    for result in load(name) or []:
        for mode in result["modes"]:
            ratio = mode["ratio_to_reference"]
            print(f"{name} {result['model']} {mode['mode']}: {mode['images_per_s']['median']:.0f} img/s, "
                  f"vs {result['reference']} {spread(ratio) if ratio else '-'}")
        if bandwidth := result.get("bandwidth"):
            print(f"  refiner {bandwidth['refiner_gb_per_s']['median']:.0f} GB/s of copy {bandwidth['copy_gb_per_s']['median']:.0f}")
PY
