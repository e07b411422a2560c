"""Instruction data for supervised fine-tuning: JSONL -> chat template -> tokens with a loss mask on responses only.

    prepare_sft_data(jsonl, tokenizer_json, out_dir, seq_length=128, template=...)   # once, before the ranks start
    SFTDataset(out_dir, seed=0, num_samples=steps * global_batch)                    # what BatchStream reads

Input: one JSON object per line (blank lines skipped), either ``{"messages": [{"role", "content"}, ...]}`` (roles
system, user, assistant; at least one assistant turn) or ``{"prompt": ..., "response": ...}`` (one user turn, one
assistant turn). Every line is checked before anything is written; an error names the file, the line and the key.

Rendering: the conversation is rendered by a Jinja chat template (the tokenizer's own ``chat_template`` from the
``tokenizer_config.json`` beside the tokenizer.json the run's corpus names (``corpora.<c>.tokenizer.path``, e.g. the
imported Hugging Face directory) when it has one and ``sft.chat_template`` is ``auto``; else
``DEFAULT_CHAT_TEMPLATE``). The characters of each assistant turn are found by rendering the conversation up to that
turn with and without it (``add_generation_prompt`` on the shorter one): what the turn adds is its response, end of
turn included (the default template's EOS, so the model learns to stop). The whole text is tokenised once (no special
tokens added: templates write their own BOS); a token is a response token when its first character lies in a response.
A template that puts no token of some assistant turn in its response (or is not prefix-stable) is an error naming the
line.

Rows: each example is one row of ``seq_length + 1`` tokens (inputs = row[:-1], labels = row[1:]), right-padded with the
pad token; ``loss_mask[t]`` is 1 exactly when label t is a response token. Why padding and not packing: the packed
alternative needs attention kept inside each example, and neither attention path here takes a per-example mask
(pretrainflow's SDPA core attention is causal-only; on GPU, megatron-core's Transformer Engine path needs THD packed
sequences with micro-batch 1, which no GPU here can test), while padding gives the same per-example attention exactly:
a causal model never attends from an example to the padding after it. An example longer than a row is cut inside its
response; one whose prompt leaves no response token in the row is an error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pretrainflow.errors import PretrainflowError

ROLES = ("system", "user", "assistant")
# The default chat template, for tokenizers without one (pretrainflow's own BPE): plain text a base model has read,
#   [system]\n\n  {user}\nAnswer: {assistant}<eos>  {user}\nAnswer: {assistant}<eos> ...
# so a prompt/response pair renders exactly as the shipped harness task asks its question ("...\nAnswer:" then " name").
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ message['content'] + '\\nAnswer:' }}"
    "{%- else -%}{{ ' ' + message['content'] + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)
TOKENS_FILE, MASK_FILE, META_FILE = "tokens.npy", "loss_mask.npy", "meta.json"
# The template itself (source and the bos/eos it was rendered with), beside the rows it rendered: meta.json only names
# it, and the published model must carry the exact text (train/llm/publish.py, export/hf_llama.py).
TEMPLATE_FILE = "chat_template.json"


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    name: str  # "default" or the tokenizer_config.json it came from
    source: str  # Jinja
    bos_token: str
    eos_token: str


def _token_text(value: Any) -> str:
    """A special token of tokenizer_config.json: a string or an AddedToken dict ({"content": ...})."""
    return value.get("content", "") if isinstance(value, dict) else str(value or "")


def chat_template(config_path: Path | None, choice: str, eos_token: str) -> ChatTemplate:
    """The template ``sft.chat_template`` selects: with ``auto``, the ``chat_template`` of ``config_path`` (a
    tokenizer_config.json) when that file exists and has one; otherwise the default, ending turns with ``eos_token``."""
    if choice == "auto" and config_path is not None and config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PretrainflowError(f"{config_path}: not a JSON file ({err})") from None
        own = config.get("chat_template")
        if isinstance(own, list):  # several named templates: the "default" one
            own = next((item.get("template") for item in own if item.get("name") == "default"), None)
        if isinstance(own, str) and own:
            eos = _token_text(config.get("eos_token")) or eos_token
            return ChatTemplate(str(config_path), own, _token_text(config.get("bos_token")), eos)
    return ChatTemplate("default", DEFAULT_CHAT_TEMPLATE, "", eos_token)


def template_json(template: ChatTemplate) -> str:
    """The template as one JSON object {name, source, bos_token, eos_token} (chat_template.json, model metadata)."""
    return json.dumps(asdict(template), sort_keys=True, ensure_ascii=False)


def template_from_json(text: str, where: str | Path) -> ChatTemplate:
    """The inverse of ``template_json``; an error names ``where`` the text came from when it is not one."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise PretrainflowError(f"{where}: chat template record is not JSON ({err})") from None
    keys = [item.name for item in fields(ChatTemplate)]
    if not (isinstance(record, dict) and sorted(record) == sorted(keys)
            and all(isinstance(record[key], str) for key in keys)):  # fmt: skip
        raise PretrainflowError(f"{where}: chat template record must be an object of strings {keys}, got {text!r:.120}")
    return ChatTemplate(**record)


@lru_cache(maxsize=8)
def _compiled(source: str):
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)


def render_with_responses(
    template: ChatTemplate, messages: list[dict[str, str]]
) -> tuple[str, list[tuple[int, int, int]]]:
    """(the rendered conversation, [(message index, first char, end char) of each assistant turn's response]).

    >>> t = ChatTemplate("default", DEFAULT_CHAT_TEMPLATE, "", "<eos>")
    >>> render_with_responses(t, [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}])
    ('2+2?\\nAnswer: 4<eos>', [(1, 12, 19)])
    """
    compiled = _compiled(template.source)

    def render(upto: list[dict[str, str]], generation_prompt: bool) -> str:
        return compiled.render(messages=upto, add_generation_prompt=generation_prompt,
                               bos_token=template.bos_token, eos_token=template.eos_token)  # fmt: skip

    full = render(messages, False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = render(messages[:index], True), render(messages[: index + 1], False)
        if not (through.startswith(before) and full.startswith(through)):
            raise ValueError(f"the chat template {template.name} is not prefix-stable at messages[{index}] (rendering "
                             "a conversation up to a turn must begin its full rendering): responses cannot be found")  # fmt: skip
        spans.append((index, len(before), len(through)))
    return full, spans


def example_messages(record: Any) -> list[dict[str, str]]:
    """The conversation of one JSONL record; ValueError("key: ...") names what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = record["messages"]
        if not (isinstance(messages, list) and messages):
            raise ValueError(f"messages: expected a non-empty list of {{role, content}}, got {messages!r:.80}")
        for index, message in enumerate(messages):
            if not (isinstance(message, dict) and {"role", "content"} <= set(message)):
                raise ValueError(f"messages[{index}]: expected an object with role and content, got {message!r:.80}")
            if message["role"] not in ROLES:
                raise ValueError(f"messages[{index}].role: expected one of {list(ROLES)}, got {message['role']!r}")
            if not isinstance(message["content"], str):
                raise ValueError(f"messages[{index}].content: expected a string, got {message['content']!r:.80}")
            if message["role"] == "assistant" and not message["content"].strip():
                raise ValueError(f"messages[{index}].content: an assistant turn is empty (nothing to learn)")
        if not any(message["role"] == "assistant" for message in messages):
            raise ValueError("messages: no assistant turn (the loss is on assistant turns only)")
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    missing = [key for key in ("prompt", "response") if key not in record]
    if missing:
        raise ValueError(f"expected 'messages' or both 'prompt' and 'response'; missing {missing} "
                         f"(keys: {sorted(record)})")  # fmt: skip
    for key in ("prompt", "response"):
        if not isinstance(record[key], str):
            raise ValueError(f"{key}: expected a string, got {record[key]!r:.80}")
    if not record["response"].strip():
        raise ValueError("response: empty (nothing to learn)")
    return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["response"]}]


def read_examples(path: Path, max_examples: int | None = None) -> list[tuple[int, list[dict[str, str]]]]:
    """(line number, conversation) of every example of a JSONL file (the first ``max_examples``); errors name the line."""
    if not path.is_file():
        raise PretrainflowError(f"{path}: instruction data (JSONL) not found")
    examples = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                examples.append((number, example_messages(json.loads(raw.decode("utf-8")))))
            except UnicodeDecodeError as err:
                raise PretrainflowError(f"{path}:{number}: not UTF-8 text ({err})") from None
            except json.JSONDecodeError as err:
                raise PretrainflowError(f"{path}:{number}: not a JSON object ({err})") from None
            except ValueError as err:
                raise PretrainflowError(f"{path}:{number}: {err}") from None
            if max_examples is not None and len(examples) == max_examples:
                break
    if not examples:
        raise PretrainflowError(f"{path}: no examples (every line is blank)")
    return examples


def tokenise_example(tokenizer, text: str, spans: list[tuple[int, int, int]], seq_length: int,
                     pad_id: int) -> tuple[np.ndarray, np.ndarray, bool]:  # fmt: skip
    """(row of seq_length + 1 token ids, loss mask of its seq_length labels, truncated?) of one rendered example."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    ids = encoding.ids
    in_response = np.zeros(len(ids), dtype=bool)
    for index, (_, start, end) in enumerate(spans):
        hits = [j for j, (first, _) in enumerate(encoding.offsets) if start <= first < end]
        if not hits:
            raise ValueError(f"messages[{spans[index][0]}]: the chat template leaves no response token of this "
                             "assistant turn (it renders the turn as nothing, or merges it into the prompt's tokens)")  # fmt: skip
        in_response[hits] = True
    row = np.full(seq_length + 1, pad_id, dtype=np.int32)
    kept = min(len(ids), seq_length + 1)
    row[:kept] = ids[:kept]
    mask = np.zeros(seq_length, dtype=np.uint8)
    mask[: kept - 1] = in_response[1:kept]  # label t is token t + 1
    if not mask.any():
        first = int(np.argmax(in_response))
        raise ValueError(f"the prompt fills the row: the first response token is token {first}, past seq_length "
                         f"{seq_length} (shorten the prompt or raise seq_length)")  # fmt: skip
    return row, mask, len(ids) > seq_length + 1


def prepare_sft_data(
    jsonl: Path, tokenizer_json: Path, out_dir: Path, *, seq_length: int, chat_template_choice: str = "auto",
    max_examples: int | None = None, template_config: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Check every example, then write ``out_dir`` atomically: tokens.npy [N, seq_length + 1] int32, loss_mask.npy
    [N, seq_length] uint8, chat_template.json (the template they were rendered with) and meta.json (counts, the
    template's name, sha256 of the data and tokenizer). Returns the meta.

    ``template_config``: the tokenizer_config.json whose ``chat_template`` ``auto`` uses (None: the default template).
    """
    from pretrainflow.corpora.tokenizer import load_tokenizer, special_ids
    from pretrainflow.io import atomic_dir, atomic_write_json, atomic_write_text, sha256_file

    tokenizer = load_tokenizer(tokenizer_json)
    eod, pad = special_ids(tokenizer)
    template = chat_template(template_config, chat_template_choice, tokenizer.id_to_token(eod))
    rows, masks, truncated = [], [], 0
    for number, messages in read_examples(jsonl, max_examples):
        try:
            text, spans = render_with_responses(template, messages)
            row, mask, cut = tokenise_example(tokenizer, text, spans, seq_length, eod if pad is None else pad)
        except ValueError as err:  # jinja2's TemplateError (raise_exception) is an Exception, caught below
            raise PretrainflowError(f"{jsonl}:{number}: {err} (chat template: {template.name})") from None
        except Exception as err:  # noqa: BLE001 - a user template may raise anything; name the line
            raise PretrainflowError(f"{jsonl}:{number}: the chat template {template.name} failed: {err}") from None
        rows.append(row)
        masks.append(mask)
        truncated += cut
    tokens, loss_mask = np.stack(rows), np.stack(masks)
    meta = {
        "examples": len(rows), "seq_length": seq_length, "truncated": truncated,
        "response_tokens": int(loss_mask.sum()),  # labels that count, over the whole set
        "fill": round(float((tokens[:, 1:] != (eod if pad is None else pad)).mean()), 4),  # non-padding share
        "chat_template": template.name, "data": str(jsonl), "data_sha256": sha256_file(jsonl),
        "tokenizer_sha256": sha256_file(tokenizer_json),
        "template_config_sha256": sha256_file(template_config) if template_config and template_config.is_file() else None,
    }  # fmt: skip
    with atomic_dir(out_dir) as tmp:
        np.save(tmp / TOKENS_FILE, tokens)
        np.save(tmp / MASK_FILE, loss_mask)
        atomic_write_text(tmp / TEMPLATE_FILE, template_json(template) + "\n")
        atomic_write_json(tmp / META_FILE, meta)
    return meta


class SFTDataset:
    """Rows of a prepared set in a fresh shuffled order every epoch: sample ``i`` is row ``perm_e[i % N]`` of epoch
    ``e = i // N`` (``perm_e`` from numpy's PCG64 seeded with (seed, e)). A pure function of ``i``, so a resumed run
    reads exactly the samples the uninterrupted one would. ``len`` is ``num_samples`` (steps x global batch)."""

    def __init__(self, prepared: Path, *, seed: int, num_samples: int) -> None:
        self.tokens = np.load(prepared / TOKENS_FILE, mmap_mode="r")
        self.loss_mask = np.load(prepared / MASK_FILE, mmap_mode="r")
        self.seed, self.num_samples, self.rows = seed, num_samples, len(self.tokens)

    def __len__(self) -> int:
        return self.num_samples

    @lru_cache(maxsize=2)  # noqa: B019 - one dataset per process, two epochs at most in flight
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        row = int(self._order(index // self.rows)[index % self.rows])
        tokens = torch.from_numpy(np.array(self.tokens[row], dtype=np.int64))
        seq_length = len(tokens) - 1
        return {"tokens": tokens[:-1], "labels": tokens[1:],
                "loss_mask": torch.from_numpy(np.array(self.loss_mask[row], dtype=np.float32)),
                "position_ids": torch.arange(seq_length, dtype=torch.int64)}  # fmt: skip
