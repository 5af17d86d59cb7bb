"""The service layer: what promptkit does, as plain functions the CLI, the web app and scripts call.

Each module holds one concern: `prompts` (build, save, search, show, delete, rate), `generation`
(generate, reproduce, iterate, the worker job spec), `experiments` (A/B and X/Y experiments,
blind pairs, votes, verdicts), `scores` (automatic judges: score images, FID and IS, agreement with
the person's votes) and `maintenance` (import, export, doctor). Functions take an open
`Library`, return plain data and raise `PromptkitError` subclasses. Nothing here imports torch or
diffusers at import time.
"""
