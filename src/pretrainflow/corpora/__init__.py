"""Text corpora for LLM pretraining: document sources, byte-level BPE tokenizer, megatron-core indexed datasets."""
