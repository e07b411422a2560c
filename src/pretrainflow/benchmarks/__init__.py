"""Benchmarks of LLM runs through lm-evaluation-harness (PyPI ``lm-eval``), fully offline.

- ``pydoc_tasks``: the tasks that ship with pretrainflow (YAML in ``tasks/``), built from the standard library's
  docstrings: ``pydoc_mc`` (which function is this docstring about? four choices) and ``pydoc_name`` (generate the
  name; exact match). ``pretrainflow benchmarks build --out results/benchmarks/tasks`` writes their JSONL.
- ``pydoc_instructions``: the default study's SFT instruction set from the same docstrings, without any name the
  shipped tasks hold out (``pretrainflow benchmarks instructions --out results/instructions/python-stdlib``).
- ``spec``: the study's ``llm_eval`` section (which tasks, batch size, limit, where user tasks and data live).
- ``harness``: runs the harness's ``hf`` model on a Hugging Face export and turns its metrics into result rows.
"""
