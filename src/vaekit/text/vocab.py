"""A word vocabulary: tokens <-> ids, padded id tensors for a sentence decoder, and a validated JSON file.

Ids. The four special tokens have fixed ids, whatever the corpus:

    <pad> = 0   fills the rows of a batch after the sentence (an `ignore_index` for the loss)
    <bos> = 1   begins every encoded sentence
    <eos> = 2   ends every encoded sentence
    <unk> = 3   any word not in the vocabulary; PTB's own literal `<unk>` token is this one too

Words follow from id 4, most frequent first (ties broken by the word itself, so a vocabulary is a function of the
training sentences alone). The literal strings `<pad>`, `<bos>` and `<eos>` in a text are not words: they are not
counted by `build` and `encode` maps them to `<unk>`.

Convention of `encode_batch` (one tensor; the shift happens in `teacher_forcing`):

    ids[i]          = <bos> w1 ... wk <eos> <pad> ...     lengths[i] = k + 2 (the markers included)
    max_len         = the most WORDS a sentence keeps (markers not counted; longer ones are cut, <eos> kept), the
                      same meaning as `read_sentences(max_len=...)`; the width is at most max_len + 2
    teacher_forcing(ids, lengths) -> inputs  = <bos> w1 ... wk <pad> ...   (decoder input)
                                     targets = w1 ... wk <eos> <pad> ...   (what to predict at each step)
                                     lengths - 1 (both hold that many tokens before the padding)
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..core import limits
from ..errors import ConfigError, DataError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = (PAD, BOS, EOS, UNK)  # at ids 0..3, in this order
FORMAT = "vaekit.vocabulary"  # the "format" key of a vocabulary file
VERSION = 1
# Bytes held per byte of a vocabulary file while it is parsed (the text, the JSON list, the word strings, the index).
LOAD_BYTES_PER_FILE_BYTE = 16


def _check_int(name: str, value: object, low: int) -> int:
    """`value` when it is a whole number >= low; a one-line ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
    return value


def _check_sentences(sentences: object, what: str) -> list[Sequence[str]]:
    """A list of token lists; a ConfigError for a string (or a list of strings) passed instead."""
    if isinstance(sentences, (str, bytes)):
        raise ConfigError(f"{what} takes a list of tokenised sentences, not a string (use vaekit.text.tokenize)")
    sentences = list(sentences)  # type: ignore[call-overload]
    for sentence in sentences:
        if isinstance(sentence, (str, bytes)):
            raise ConfigError(f"{what} takes a list of token lists, got a string {str(sentence)[:40]!r} as a sentence")
    return sentences


@dataclass(frozen=True)
class Vocabulary:
    """`words[i]` is the token of id i; the specials come first (see the module docstring)."""

    words: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = tuple(self.words)
        if words[:4] != SPECIALS:
            raise DataError(f"the first four words must be {', '.join(SPECIALS)} (ids 0..3), got {list(words[:4])}")
        index: dict[str, int] = {}
        for i, word in enumerate(words):
            if not isinstance(word, str) or not word or word != word.strip() or len(word.split()) != 1:
                raise DataError(f"word {i} is {word!r}: a word must be a non-empty string without whitespace")
            if word in index:
                raise DataError(f"word {word!r} appears twice (ids {index[word]} and {i})")
            index[word] = i
        if len(words) == len(SPECIALS):
            raise DataError("the vocabulary holds no words besides the special tokens")
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "_index", index)

    # --- building -------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: int | None = None,
              min_count: int = 1) -> "Vocabulary":
        """The words of tokenised training `sentences` seen at least `min_count` times, most frequent first (ties
        by the word); `max_size` (None: no limit) counts the four special tokens too."""
        if max_size is not None:
            _check_int("max_size", max_size, len(SPECIALS) + 1)
        _check_int("min_count", min_count, 1)
        counts: Counter[str] = Counter()
        for sentence in _check_sentences(sentences, "Vocabulary.build"):
            counts.update(sentence)
        for special in SPECIALS:  # PTB's `<unk>` is the special <unk>; the other specials are not words
            counts.pop(special, None)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if not ranked:
            raise DataError(f"no word occurs at least {min_count} time(s) in the training sentences")
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        return cls(SPECIALS + tuple(ranked))

    # --- ids ------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def id(self, word: str) -> int:
        """The id of `word`; `<unk>`'s for a word not in the vocabulary (and for `<pad>`, `<bos>`, `<eos>`)."""
        i = self._index.get(word, UNK_ID)
        return UNK_ID if i < UNK_ID else i

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of `tokens` (no <bos>/<eos>); unknown words -> UNK_ID."""
        if isinstance(tokens, (str, bytes)):
            raise ConfigError("encode takes a list of tokens, not a string (use vaekit.text.tokenize)")
        return [self.id(t) for t in tokens]

    def encode_batch(self, sentences: Sequence[Sequence[str]],
                     max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (N, L) int64 of `<bos> words <eos>` padded with PAD_ID, lengths (N,) int64 with the markers).

        `max_len` is the most words kept per sentence (None: all); a longer sentence is cut and still ends in
        <eos>. L is the longest row, at most max_len + 2."""
        sentences = _check_sentences(sentences, "encode_batch")
        if max_len is not None:
            _check_int("max_len", max_len, 1)
        rows = [[BOS_ID, *self.encode(s[:max_len] if max_len is not None else s), EOS_ID] for s in sentences]
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.int64)
        width = int(lengths.max()) if rows else 2
        limits.check_allocation(limits.count((len(rows), width)) * 9, f"encoding {len(rows)} sentences of up to "
                                f"{width} tokens")  # the ids (8 bytes) and a mask (1 byte) per position
        ids = torch.full((len(rows), width), PAD_ID, dtype=torch.int64)
        mask = torch.arange(width) < lengths[:, None]
        ids[mask] = torch.tensor([i for r in rows for i in r], dtype=torch.int64)  # row-major, as `rows` are joined
        return ids, lengths

    def decode(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """The words of one id sequence: <pad> and <bos> skipped, stopping at the first <eos>."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        words = []
        for i in values:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.words):
                raise DataError(f"id {i!r} is not one of the vocabulary's {len(self.words)} ids")
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                words.append(self.words[i])
        return words

    def unk_rate(self, sentences: Iterable[Sequence[str]]) -> float:
        """Share of the tokens of `sentences` that encode to <unk> (PTB's own `<unk>` included); 0.0 when none."""
        total = unknown = 0
        for sentence in _check_sentences(sentences, "unk_rate"):
            ids = self.encode(sentence)
            total += len(ids)
            unknown += ids.count(UNK_ID)
        return unknown / total if total else 0.0

    # --- files ----------------------------------------------------------------------------------------------

    def to_json(self) -> str:
        """`{"format": "vaekit.vocabulary", "version": 1, "words": [...]}`, words in id order."""
        return json.dumps({"format": FORMAT, "version": VERSION, "words": list(self.words)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        """The vocabulary of `to_json`'s text, checked (format, specials at their ids, no duplicate words)."""
        try:
            values = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
            raise DataError(f"not valid JSON ({error})") from None
        except RecursionError:
            raise DataError("not valid JSON (nested too deeply)") from None
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise DataError(f"not a vaekit vocabulary (expected a JSON object with \"format\": \"{FORMAT}\")")
        if values.get("version") != VERSION:
            raise DataError(f"vocabulary version {values.get('version')!r} is not supported (expected {VERSION})")
        if not isinstance(values.get("words"), list):
            raise DataError("\"words\" must be a list of strings")
        return cls(tuple(values["words"]))

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """Reads and checks a file holding `to_json()` (the run writer's vocab.json); a DataError naming the
        file otherwise."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"vocabulary file {str(path)!r} does not exist")
        limits.check_allocation(path.stat().st_size * LOAD_BYTES_PER_FILE_BYTE, f"reading vocabulary {path}",
                                error=DataError)
        try:
            return cls.from_json(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as error:
            raise DataError(f"vocabulary file {path} is not UTF-8 text (byte {error.start})") from None
        except DataError as error:
            raise DataError(f"vocabulary file {path}: {error}") from None


def teacher_forcing(ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(decoder inputs, targets, their lengths) of `encode_batch`'s output: inputs drop the <eos>, targets the
    <bos> (see the module docstring); both (N, L - 1), padded with PAD_ID."""
    inputs = ids[:, :-1].masked_fill(ids[:, :-1] == EOS_ID, PAD_ID)
    return inputs, ids[:, 1:], lengths - 1
