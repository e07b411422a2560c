"""Training: ViT pretraining and fine-tuning through DeepSpeed (vit.py, finetune.py, loop.py, engine.py) and the
LLM pretraining through megatron-core (llm*.py). Modules import torch/DeepSpeed; the CLIs import them lazily."""
