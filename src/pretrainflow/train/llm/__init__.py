"""LLM stack through megatron-core: ``spec`` (typed run spec), ``cli`` (pretrain-llm, sft-llm, evaluate-llm,
export-llama), ``pretrain`` (the per-rank worker), ``loop``, ``engine``, ``checkpoint`` (dist_checkpointing), ``data``
(GPT datasets and blends), ``evaluate`` (held-out perplexity), ``publish`` (consolidate to TP=1 and write the run
directory); supervised fine-tuning: ``sft_spec`` (the run's ``sft`` section), ``sft_data`` (JSONL, chat template,
response-only loss mask, rows), ``sft_prepare`` (what sft-llm checks and writes before the ranks start)."""
