"""GPT training data through megatron-core: BlendedMegatronDatasetBuilder over the corpus's indexed dataset.

The corpus stage wrote ``{corpora_dir}/{corpus}/{corpus}_text_document.bin/.idx`` and tokenizer.json. Here the split
string of the run's corpus ("98,1,1" = train, valid, test weights over documents) and the blend (the run's ``blend``
{corpus: weight}, default its one corpus) go into a ``GPTDatasetConfig``; megatron-core builds (and caches under ``path_to_cache``) the shuffled sample index with
its C++ helpers (``megatron.core.datasets.helpers_cpp``; the megatron-core wheel ships it prebuilt for CPython 3.11,
from source it is compiled by ``compile_helpers()`` which needs make and g++).

Every rank calls the builder (megatron-core requires it); rank 0 of the world builds the cache first, then the others
read it. Sample ``i`` of step ``s`` is ``(s * global + dp_rank * micro * accum + ...)``: each data-parallel rank reads
its own slice of every global batch; tensor-parallel ranks of one replica read the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from pretrainflow.errors import PretrainflowError
from pretrainflow.study import layout


def corpus_prefix(corpora_dir: str | Path, corpus: str) -> Path:
    """``{corpora_dir}/{corpus}/{corpus}_text_document`` (the megatron-core dataset prefix)."""
    prefix = Path(corpora_dir) / layout.CORPUS_PREFIX_IN_ROOT.format(corpus=corpus)
    if not Path(f"{prefix}.idx").is_file():
        raise PretrainflowError(f"{prefix}.idx: indexed corpus not found (run the corpora stage for {corpus!r})")
    return prefix


def blend_prefixes(corpora_dir: str | Path, blend: dict[str, float]) -> tuple[list[str], list[float] | None]:
    """Dataset prefixes and weights of a blend ``{corpus: weight}``; all corpora must share one tokenizer.

    A single corpus gets weights None (megatron-core then sizes splits by the data itself, and full-epoch validation
    is allowed). Weights are relative (megatron-core normalises them).
    """
    import json

    prefixes = [str(corpus_prefix(corpora_dir, name)) for name in blend]
    tokenizers = {}
    for name in blend:
        manifest = Path(corpora_dir) / name / "manifest.json"
        tokenizers[name] = json.loads(manifest.read_text())["sha256"]["tokenizer"] if manifest.is_file() else None
    if len(set(tokenizers.values())) > 1:
        raise PretrainflowError(f"blend {sorted(blend)}: corpora were tokenized with different tokenizers {tokenizers}")
    return prefixes, (None if len(blend) == 1 else [float(w) for w in blend.values()])


def build_gpt_datasets(*, prefixes: list[str], weights: list[float] | None, tokenizer_path: Path, split: str, seq_length: int, seed: int,
                       num_samples: tuple[int, int, int], cache_dir: Path, is_first_rank: bool):  # fmt: skip
    """(train, valid, test) megatron-core GPTDatasets with at least ``num_samples`` sequences each (None if 0)."""
    import torch.distributed as dist
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    from pretrainflow.corpora.tokenizer import make_megatron_tokenizer

    config = GPTDatasetConfig(
        random_seed=seed,
        sequence_length=seq_length,
        blend=(prefixes, weights),
        split=split,
        tokenizer=make_megatron_tokenizer(tokenizer_path),
        path_to_cache=str(cache_dir),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,  # causal attention needs no explicit mask
        mid_level_dataset_surplus=0.005,
    )

    def build():
        return BlendedMegatronDatasetBuilder(GPTDataset, list(num_samples), lambda: True, config).build()

    # The builder writes index caches: let the first rank of the world write them before anybody reads.
    distributed = dist.is_available() and dist.is_initialized()
    if is_first_rank:
        datasets = build()
    if distributed:
        dist.barrier()
    if not is_first_rank:
        datasets = build()
    return datasets


class BatchStream:
    """Micro-batches of one data-parallel rank, starting at any optimizer step (for resume).

    Global batch ``g`` of step ``s`` covers dataset samples ``[s*g, (s+1)*g)``; data-parallel rank ``r`` takes the
    contiguous slice ``[s*g + r*g/dp, s*g + (r+1)*g/dp)``, split into ``accum`` micro-batches of ``micro`` samples.
    """

    def __init__(self, dataset, *, micro: int, global_batch: int, dp_rank: int, dp_size: int) -> None:
        self.dataset, self.micro, self.global_batch = dataset, micro, global_batch
        self.per_rank = global_batch // dp_size
        self.dp_rank = dp_rank

    def step(self, step: int) -> Iterator[dict[str, torch.Tensor]]:
        """The micro-batches (dicts of tokens, labels, loss_mask, position_ids) of optimizer step ``step``."""
        start = step * self.global_batch + self.dp_rank * self.per_rank
        for offset in range(0, self.per_rank, self.micro):
            idx = [(start + offset + i) % len(self.dataset) for i in range(self.micro)]
            yield collate([self.dataset[i] for i in idx])


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack megatron-core GPT samples into a batch (drops the attention mask: attention is causal)."""
    keys = ("tokens", "labels", "loss_mask", "position_ids")
    return {key: torch.stack([torch.as_tensor(sample[key]) for sample in samples]) for key in keys}
