set -x
export PYTHONPATH=/work/wt/h24
PY=/work/main/.venv/bin/python
A="benchmarks/lab/ablate.py --videos-per-class 40 --epochs 12 --steps 0 7 10"
L="benchmarks/lab/ablate.py --videos-per-class 120 --epochs 12 --steps 0 7 10"
$PY $L --tag default_floor64 --kwargs '{"short_cycle_min_crop": 64}' --seed 0
$PY $A --tag short45 --kwargs '{"short_cycle_factors": [0.7071067811865476, 0.7071067811865476]}' --seed 0
$PY $A --tag short_off_lr1 --patch short_off_from_lr_stage=1 --seed 0
$PY benchmarks/lab/ablate.py --videos-per-class 120 --epochs 24 --steps 0 14 20 --tag default_floor64 --kwargs '{"short_cycle_min_crop": 64}' --seed 0
$PY $A --tag pbn_big --kwargs '{"precise_bn_batches": 100, "precise_bn_budget": 1.0}' --seed 0
$PY $L --kind baseline --tag base --seed 0
