"""Lab tool for issue 24: one training of `make accuracy`'s setting (benchmarks/accuracy.py) with any
MultigridCallback arguments, appended to a JSONL (the val curve included).

    python benchmarks/lab/acc_variant.py --seed 0 --kwargs '{"precise_bn_budget": 1.0}' --tag pbn --out F
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import accuracy  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kwargs", default="{}", help="MultigridCallback arguments (JSON); 'null' for the baseline")
    p.add_argument("--tag", required=True)
    p.add_argument("--out", default="benchmarks/lab/acc_variants.jsonl")
    p.add_argument("--data-root", default="data/accuracy")
    a = p.parse_args()
    setting = accuracy.Setting()
    data_dir = accuracy.prepare(setting, Path(a.data_root))
    kwargs = json.loads(a.kwargs)
    result = accuracy.train_once(setting, str(data_dir), a.tag, kwargs, a.seed)
    result.pop("test_correct")
    with open(a.out, "a") as f:
        f.write(json.dumps({"tag": a.tag, **result}) + "\n")
    print(a.tag, a.seed, "test", round(result["test_top1"], 3), "train_s", round(result["train_s"], 1),
          "val", [(round(e["train_s"]), round(e["val_top1"], 3)) for e in result["val_curve"]])


if __name__ == "__main__":
    main()
