"""`pretrainflow corpora ...`: train the tokenizer, tokenize one shard, merge shards (rules in workflow/rules/corpora.smk).

    pretrainflow corpora train-tokenizer --spec "$SPEC" --out results/corpora/pydocs/tokenizer.json
    pretrainflow corpora build-shard --spec "$SPEC" --shard 0 --tokenizer results/corpora/pydocs/tokenizer.json \\
        --out-prefix results/corpora/pydocs/shards/shard-00000
    pretrainflow corpora merge --spec "$SPEC" --tokenizer results/corpora/pydocs/tokenizer.json \\
        --shards results/corpora/pydocs/shards/shard-00000 --out-dir results/corpora/pydocs
"""

from __future__ import annotations

import argparse
import json
import time


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("corpora", help="text corpora: tokenizer, megatron-core indexed dataset")
    commands = group.add_subparsers(dest="corpora_command", required=True, metavar="<step>")

    tok = commands.add_parser("train-tokenizer", help="train a byte-level BPE (or copy the configured tokenizer.json)")
    tok.add_argument("--spec", required=True, help="resolved corpus spec (JSON)")
    tok.add_argument("--out", required=True, help="tokenizer.json to write")
    tok.set_defaults(func=run_train_tokenizer)

    shard = commands.add_parser("build-shard", help="tokenize shard K into PREFIX.bin/.idx")
    shard.add_argument("--spec", required=True)
    shard.add_argument("--shard", required=True, type=int)
    shard.add_argument("--tokenizer", required=True)
    shard.add_argument("--out-prefix", required=True)
    shard.set_defaults(func=run_build_shard)

    merge = commands.add_parser("merge", help="merge shard datasets into {corpus}_text_document + manifest")
    merge.add_argument("--spec", required=True)
    merge.add_argument("--tokenizer", required=True)
    merge.add_argument("--shards", required=True, nargs="+", help="shard prefixes, in order")
    merge.add_argument("--out-dir", required=True)
    merge.set_defaults(func=run_merge)


def _spec(text: str):
    from pretrainflow.corpora.spec import corpus_from_dict

    return corpus_from_dict(json.loads(text), "corpora")


def run_train_tokenizer(args: argparse.Namespace) -> int:
    from pretrainflow.corpora.sources import iter_documents, sample_documents
    from pretrainflow.corpora.tokenizer import load_tokenizer, train_bpe
    from pretrainflow.io import atomic_write_bytes

    spec = _spec(args.spec)
    start = time.time()
    if spec.tokenizer.path is not None:
        load_tokenizer(spec.tokenizer.path)  # fails early, naming the file, if it is not a tokenizer.json
        with open(spec.tokenizer.path, "rb") as handle:
            atomic_write_bytes(args.out, handle.read())
        print(f"[corpora] {spec.name}: using tokenizer {spec.tokenizer.path}")
        return 0
    documents = iter_documents(spec.source)
    if spec.tokenizer.sample_documents:
        documents = sample_documents(documents, spec.tokenizer.sample_documents, spec.seed)
    train_bpe(documents, spec.tokenizer.vocab_size, args.out, spec.tokenizer.min_frequency)
    print(f"[corpora] {spec.name}: trained a {spec.tokenizer.vocab_size}-token BPE in {time.time() - start:.1f} s")
    return 0


def run_build_shard(args: argparse.Namespace) -> int:
    from pretrainflow.corpora.indexed import build_shard

    spec = _spec(args.spec)
    start = time.time()
    counts = build_shard(spec, args.shard, args.tokenizer, args.out_prefix)
    seconds = time.time() - start
    print(f"[corpora] {spec.name} shard {args.shard}: {counts['documents']} documents, {counts['tokens']} tokens "
          f"in {seconds:.1f} s ({counts['tokens'] / seconds:.0f} tokens/s)")  # fmt: skip
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from pretrainflow.corpora.indexed import merge_shards

    spec = _spec(args.spec)
    manifest = merge_shards(spec, args.shards, args.tokenizer, args.out_dir)
    print(f"[corpora] {spec.name}: {manifest['documents']} documents, {manifest['tokens']} tokens -> {args.out_dir}")
    return 0
