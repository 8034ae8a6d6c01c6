set -x
PY=/work/main/.venv/bin/python
A="benchmarks/lab/ablate.py --videos-per-class 40 --epochs 12 --steps 0 7 10"
$PY $A --kind baseline --tag base --seed 0
$PY $A --tag mg_ref --seed 0
$PY $A --tag short_off_lr1 --patch short_off_from_lr_stage=1 --seed 0
$PY $A --tag long_only --kwargs '{"short_cycle": false}' --seed 0
$PY $A --tag short45 --kwargs '{"short_cycle_factors": [0.7071067811865476, 0.7071067811865476]}' --seed 0
$PY $A --tag pbn_big --kwargs '{"precise_bn_batches": 100, "precise_bn_budget": 1.0}' --seed 0
$PY $A --tag short_off_ft --patch short_off_finetune --seed 0
$PY $A --kind baseline --tag base --seed 1
$PY $A --tag mg_ref --seed 1
$PY $A --tag short_off_lr1 --patch short_off_from_lr_stage=1 --seed 1
