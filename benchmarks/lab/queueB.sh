set -x
export PYTHONPATH=/work/wt/h24
PY=/work/main/.venv/bin/python
B="benchmarks/lab/ablate.py --task patterns --videos-per-class 120 --extra-test 102 --out benchmarks/lab/calib.jsonl"
$PY $B --kind baseline --tag calib_e12 --epochs 12 --steps 0 7 10 --seed 0
