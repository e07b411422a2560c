"""Training: one shared floor under two engine stacks.

The floor (this package): ``signals`` (walltime signals -> checkpoint -> exit 75), ``runlog`` (progress bar,
TensorBoard, metric rows, loss plot), ``publish`` (a stage's output directory, one config.json shape).
``vit/``: ViT pretraining and fine-tuning through DeepSpeed. ``llm/``: GPT pretraining through megatron-core.
Modules import torch / DeepSpeed / megatron-core; the CLIs import them lazily so ``pretrainflow --help`` is instant.
"""
