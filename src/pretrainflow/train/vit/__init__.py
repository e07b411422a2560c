"""ViT stack through DeepSpeed: ``spec`` (typed run / task / fine-tune specs), ``cli`` (pretrain-vit, finetune,
evaluate, pretrain-rows, export-timm), ``pretrain`` and ``finetune`` (per-rank workers), ``loop`` (the training loop),
``engine`` (DeepSpeed engine), ``checkpoint``, ``data``, ``augment``, ``optim``, ``schedule``, ``evaluate``."""
