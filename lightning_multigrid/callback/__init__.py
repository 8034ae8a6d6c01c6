"""The callback: :mod:`.hooks` (:class:`MultigridCallback`, Lightning's hooks only), :mod:`.run`
(one fit's schedule, loaders, BN, LR and precise BN), :mod:`.model_probe` (the setup forward pass
per distinct clip length) and :mod:`.compat` (the few private Lightning touches, restored at teardown).
"""

from lightning_multigrid.callback.hooks import MultigridCallback

__all__ = ["MultigridCallback"]
