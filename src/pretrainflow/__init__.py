"""pretrainflow: declarative pretraining studies (synthetic datasets -> ViT / GPT pretraining -> fine-tune -> results)."""

__version__ = "0.1.0"
