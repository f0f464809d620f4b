"""Text data sets: sentences as token ids, with the vocabulary built from the training split.

    ptb              Penn Treebank (Mikolov's preprocessing) under $VAEKIT_DATA/ptb, its own three splits
    toy-sentences    a small built-in grammar (vaekit.text.toy_corpus): tests and a demo in seconds
    a .txt path      any UTF-8 file, one sentence a line, split by seed like any other file

A text bundle's x is (N, max_len + 2) int64: `<bos> w1 .. wk <eos> <pad> ...` (vaekit.text.vocab); its
`vocab` maps ids to words. Sentences longer than `max_len` words are cut, with a warning that says how many.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch

from ..data.base import DATASETS, FILE_LOADERS, VALUE_CHECKS, DataBundle, Split
from ..data.common import (DEFAULT_MAX_LEN, DEFAULT_TEST_FRACTION, DEFAULT_VALID_FRACTION, DEFAULT_VOCAB_SIZE,
                           check_fractions, dataset_folder, find_file)
from ..errors import DataError
from .corpus import PTB_FILES, read_sentences, tokenize, toy_corpus
from .vocab import Vocabulary

log = logging.getLogger(__name__)



def text_bundle(name: str, splits: dict[str, list[list[str]]], max_len: int, vocab_size: int,
                meta: dict | None = None) -> DataBundle:
    """A text bundle of tokenised sentence splits (a "train" one among them): the vocabulary of the training
    split (most frequent `vocab_size` tokens, specials included), every split encoded and padded to
    max_len + 2 ids."""
    if "train" not in splits or not splits["train"]:
        raise DataError(f"data set {name!r} has no training sentences")
    vocab = Vocabulary.build(splits["train"], max_size=vocab_size)
    width = max_len + 2
    encoded = {}
    for split, sentences in splits.items():
        ids, _ = vocab.encode_batch(sentences, max_len=max_len)
        x = torch.zeros((ids.shape[0], width), dtype=torch.int64)  # PAD_ID is 0: padded to the model's width
        x[:, : ids.shape[1]] = ids
        encoded[split] = Split(x)
    info = {"vocab_size": len(vocab), "unk_rate": {k: round(vocab.unk_rate(v), 5) for k, v in splits.items()},
            "sentences": {k: len(v) for k, v in splits.items()}, "max_len": max_len, **(meta or {})}
    return DataBundle(name=name, splits=encoded, event_shape=(width,), value_kind="tokens", meta=info,
                      default_likelihood="sentence", default_network="rnn", vocab=vocab, modality_hint="text")


def bundle_from_sentences(sentences, valid=None, *, name: str = "sentences", max_len: int = DEFAULT_MAX_LEN,
                          vocab_size: int = DEFAULT_VOCAB_SIZE) -> DataBundle:
    """A text bundle of training sentences (strings, split on whitespace, or token lists) and optionally
    validation ones: the vocabulary of the training sentences (`vocab_size` most frequent tokens, the four
    special ones included), each sentence cut to `max_len` words."""

    def tokens(items) -> list[list[str]]:
        if isinstance(items, str):
            items = [items]
        return [tokenize(s) if isinstance(s, str) else list(s) for s in items]

    splits = {"train": [t[:max_len] for t in tokens(sentences) if t]}
    if valid is not None:
        splits["valid"] = [t[:max_len] for t in tokens(valid) if t]
    return text_bundle(name, splits, max_len, vocab_size)


def validate_text_bundle(bundle: DataBundle) -> DataBundle:
    """A text bundle's checks: a vocabulary, and int64 ids (N, L) within it in every split."""
    name = bundle.name
    if bundle.vocab is None:
        raise DataError(f"text data set {name!r} has no vocabulary")
    for split_name, split in bundle.splits.items():
        x = split.x
        if x.dtype != torch.int64 or x.dim() != 2 or tuple(x.shape[1:]) != tuple(bundle.event_shape):
            raise DataError(f"text data set {name!r}: {split_name!r} must hold int64 token ids of shape "
                            f"(sentences, {bundle.event_shape[0]}), got {x.dtype} {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise DataError(f"data set {name!r} has an empty {split_name!r} split")
        if int(x.min()) < 0 or int(x.max()) >= len(bundle.vocab):
            raise DataError(f"text data set {name!r}: {split_name!r} holds ids outside its vocabulary of "
                            f"{len(bundle.vocab)}")
    if len(bundle.splits["train"]) < 2:
        raise DataError(f"data set {name!r} has {len(bundle.splits['train'])} training sentence; at least 2 are "
                        f"needed")
    return bundle


def ptb_files(root: str | Path | None = None) -> dict[str, Path]:
    """The paths of PTB's train/valid/test files in `root` (or `root/ptb`, or `$VAEKIT_DATA/ptb`); a DataError
    saying which file is expected where when one is missing."""
    folder = dataset_folder("ptb", root, markers=tuple(PTB_FILES.values()))
    return {split: find_file(folder, "ptb", [name]) for split, name in PTB_FILES.items()}


def ptb_splits(root: str | Path | None = None) -> dict[str, list[list[str]]]:
    """PTB's "train", "valid" and "test" sentences, whole (call `read_sentences` on `ptb_files()` to cut them)."""
    return {split: read_sentences(path)[0] for split, path in ptb_files(root).items()}


def _read(path: Path, max_len: int) -> list[list[str]]:
    """The sentences of one file, cut to max_len words, with a warning when some were cut."""
    sentences, report = read_sentences(path, max_len=max_len)
    if report.warning():
        log.warning(report.warning())
    return sentences


def _split_sentences(sentences: list[list[str]], valid_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, list[list[str]]]:
    """Train/valid/test lists of a seeded shuffle (a split whose fraction is 0 is left out)."""
    check_fractions(valid_fraction, test_fraction)
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_valid = max(1, round(n * valid_fraction)) if valid_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    if n - n_valid - n_test < 2:
        raise DataError(f"{n} sentences leave fewer than 2 for training after the validation and test splits")
    parts = {"valid": order[:n_valid], "test": order[n_valid : n_valid + n_test], "train": order[n_valid + n_test :]}
    return {k: [sentences[i] for i in parts[k]] for k in ("train", "valid", "test") if parts[k]}


@DATASETS.register("ptb")
def ptb(*, root: str | Path | None = None, max_len: int = DEFAULT_MAX_LEN,
        vocab_size: int = DEFAULT_VOCAB_SIZE) -> DataBundle:
    """Penn Treebank sentences (Mikolov's preprocessing, 10,000 words): 42,068 / 3,370 / 3,761 in its own splits."""
    files = ptb_files(root)
    splits = {split: _read(path, max_len) for split, path in files.items()}
    return text_bundle("ptb", splits, max_len, vocab_size, {"source": str(files["train"].parent)})


@DATASETS.register("toy-sentences")
def toy_sentences(*, seed: int = 0, valid_fraction: float = DEFAULT_VALID_FRACTION,
                  test_fraction: float = DEFAULT_TEST_FRACTION, max_len: int = DEFAULT_MAX_LEN,
                  vocab_size: int = DEFAULT_VOCAB_SIZE) -> DataBundle:
    """2,000 sentences of a tiny built-in English grammar (59 words, two topics), split 70/10/20 by seed."""
    sentences = [s[:max_len] for s in toy_corpus(2000, seed=0)]  # the corpus is fixed; the seed splits it
    splits = _split_sentences(sentences, valid_fraction, test_fraction, seed)
    return text_bundle("toy-sentences", splits, max_len, vocab_size, {"source": "vaekit.text.toy_corpus"})


def load_text_file(path: Path, *, seed: int = 0, valid_fraction: float = DEFAULT_VALID_FRACTION,
                   test_fraction: float = DEFAULT_TEST_FRACTION, max_len: int = DEFAULT_MAX_LEN,
                   vocab_size: int = DEFAULT_VOCAB_SIZE) -> DataBundle:
    """A text bundle of a UTF-8 file with one sentence a line (blank lines skipped), split by seed."""
    sentences = _read(path, max_len)
    splits = _split_sentences(sentences, valid_fraction, test_fraction, seed)
    return text_bundle(path.name, splits, max_len, vocab_size, {"path": str(path.resolve()), "split_seed": seed})


FILE_LOADERS[".txt"] = load_text_file  # one sentence a line
VALUE_CHECKS["tokens"] = validate_text_bundle  # int64 ids within the vocabulary
