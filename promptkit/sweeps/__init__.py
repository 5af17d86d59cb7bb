"""Sweeps past one GPU: an experiment's missing cells made by Ray actors (`ray_runner`, many
machines, the driver alone writes the library) or by the processes of `accelerate launch`
(`accelerate_runner`, one machine, each process writes its own rows). `cells` holds what both
share: the batches a local `ab run` makes, one batch on a loaded backend, one cell written.

Nothing here is imported by `promptkit --help`; Ray and accelerate load only when asked for.
"""
