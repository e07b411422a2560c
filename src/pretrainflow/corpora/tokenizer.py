"""Byte-level BPE tokenizer (Hugging Face ``tokenizers``) and its adapter to megatron-core's tokenizer interface.

Special tokens: ``<|endoftext|>`` (id 0) ends every document (megatron's ``eod``) and doubles as BOS/EOS in the
Hugging Face export; ``<|pad|>`` (id 1). Byte-level pre-tokenisation means every UTF-8 string is encodable (no UNK).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_path

EOD_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = [EOD_TOKEN, PAD_TOKEN]


def train_bpe(documents: Iterable[str], vocab_size: int, out_path: str | Path, min_frequency: int = 2) -> None:
    """Train a byte-level BPE of ``vocab_size`` tokens on ``documents`` and write tokenizer.json atomically."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, so nothing is ever unknown
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer)
    with atomic_path(out_path) as tmp:
        tokenizer.save(str(tmp))


def load_tokenizer(path: str | Path):
    """Load a tokenizer.json; the error names the file when it is missing or not a tokenizer."""
    from tokenizers import Tokenizer

    if not Path(path).is_file():
        raise PretrainflowError(f"{path}: tokenizer.json not found")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception on malformed JSON
        raise PretrainflowError(f"{path}: not a Hugging Face tokenizer.json ({err})") from None


def special_ids(tokenizer) -> tuple[int, int | None]:
    """(eod id, pad id or None). Tokenizers without our EOD token fall back to common end-of-text names."""
    for name in (EOD_TOKEN, "</s>", "<|end_of_text|>", "<eos>"):
        eod = tokenizer.token_to_id(name)
        if eod is not None:
            return eod, tokenizer.token_to_id(PAD_TOKEN)
    raise PretrainflowError(f"tokenizer has no end-of-document token (looked for {EOD_TOKEN!r}, '</s>', ...)")


def make_megatron_tokenizer(path: str | Path):
    """A megatron-core ``MegatronTokenizerBase`` around tokenizer.json, as GPTDatasetConfig needs (vocab_size, eod)."""
    from megatron.core.tokenizers import MegatronTokenizerBase

    hf = load_tokenizer(path)
    eod, pad = special_ids(hf)

    class HFJsonTokenizer(MegatronTokenizerBase):
        """Just what megatron-core's GPT datasets read: ``vocab_size``, ``eod``, ``pad``; plus encode/decode."""

        def tokenize(self, text: str) -> list[int]:
            return hf.encode(text).ids

        def detokenize(self, ids: list[int]) -> str:
            return hf.decode(ids)

        @property
        def vocab(self) -> dict[str, int]:
            return hf.get_vocab()

        @property
        def vocab_size(self) -> int:
            return hf.get_vocab_size()

        def apply_chat_template(self, *args, **kwargs):
            raise NotImplementedError("pretraining corpora have no chat template")

        @property
        def eod(self) -> int:
            return eod

        @property
        def pad(self) -> int:
            return -1 if pad is None else pad

    from pretrainflow.io import sha256_file

    wrapped = HFJsonTokenizer(str(path), {"library": "huggingface-tokenizers"})
    # megatron-core hashes the dataset description (tokenizer included) to name its index cache files.
    wrapped.unique_identifiers = {"class": "HFJsonTokenizer", "tokenizer_sha256": sha256_file(path)}
    return wrapped
