"""LLM stack through megatron-core: ``spec`` (typed run spec), ``cli`` (pretrain-llm, evaluate-llm, export-llama),
``pretrain`` (the per-rank worker), ``loop``, ``engine``, ``checkpoint`` (dist_checkpointing), ``data`` (GPT datasets
and blends), ``evaluate`` (held-out perplexity), ``publish`` (consolidate to TP=1 and write the run directory)."""
