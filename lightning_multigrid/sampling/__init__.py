"""From the schedule to the datasets: ``(index, shape)`` keys, the batch sampler and the loaders.

:mod:`.keys` (the key contract between sampler and dataset), :mod:`.sampler`
(:class:`MultigridBatchSampler`, the same key sequence on every rank) and :mod:`.loaders` (the
fit-long train loader and the precise-BN loader).
"""
