"""Text to integer symbol sequences for discrete HMMs.

Reference: Rabiner, "A tutorial on hidden Markov models and selected
applications in speech recognition" (Proc. IEEE 1989), section II: a discrete
HMM emits one of M symbols v_1..v_M per time step; here the symbols are
characters or words and several independent sequences (sentences or lines)
are concatenated with their ``lengths``, the layout of hmmlearn and of
``lvm_core``'s HMMs: ``X`` of shape (T, 1) int64 with sum(lengths) == T.
The classic character-HMM experiment on English letters and space is
Cave & Neuwirth, "Hidden Markov models for English" (1980).

* :class:`Vocabulary` maps symbols <-> ids (with an optional unknown token)
  and serialises to JSON;
* :func:`text_to_sequences` splits a text into sentences or lines, normalises
  them (lower case, optional alphabet filter) and encodes them;
* :func:`load_embedded_text` returns the public-domain English text shipped in
  ``data_tools/embedded`` (Bierce, *The Devil's Dictionary*, 1911).
"""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np

__all__ = ["Vocabulary", "text_to_sequences", "load_embedded_text", "ENGLISH_LETTERS_SPACE"]

#: The 27-symbol alphabet of the character-HMM demos (Cave & Neuwirth 1980).
ENGLISH_LETTERS_SPACE = "abcdefghijklmnopqrstuvwxyz "

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # letters/digits, inner apostrophes kept
_LEVELS = ("char", "word")
_EMBEDDED = Path(__file__).resolve().parent / "embedded"
_TEXTS = {"devils-dictionary": "devils-dictionary.txt.gz"}


def _check_level(level):
    if level not in _LEVELS:
        raise ValueError(f"level must be 'char' or 'word'; got {level!r}.")


class Vocabulary:
    """A bijection between M symbols (characters or words) and ids 0..M-1.

    Parameters
    ----------
    symbols : sequence of distinct str, in id order
    level : "char" (a text is a sequence of characters) or "word"
        (a text is the sequence of its words: runs of letters/digits with
        inner apostrophes; punctuation is not a word)
    lowercase : bool, lower-case texts before encoding
    unk_token : str or None
        If given, symbols missing from the vocabulary encode to its id
        (added at id 0 when not among ``symbols``); if None, encoding an
        unknown symbol raises ValueError.
    """

    def __init__(self, symbols, level="char", lowercase=True, unk_token=None):
        _check_level(level)
        symbols = list(symbols)
        for s in symbols:
            if not isinstance(s, str) or not s:
                raise TypeError(f"Vocabulary: symbols must be non-empty str; got {s!r}.")
            if level == "char" and len(s) != 1 and s != unk_token:
                raise ValueError(
                    f"Vocabulary(level='char'): symbols must be single characters; got {s!r}."
                )
        if len(set(symbols)) != len(symbols):
            dup = next(s for s in symbols if symbols.count(s) > 1)
            raise ValueError(f"Vocabulary: symbols must be distinct; {dup!r} appears twice.")
        if unk_token is not None and unk_token not in symbols:
            symbols = [unk_token] + symbols
        if not symbols:
            raise ValueError("Vocabulary: needs at least one symbol; got none.")
        self.symbols = tuple(symbols)
        self.level = level
        self.lowercase = bool(lowercase)
        self.unk_token = unk_token
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def build(cls, text, level="char", lowercase=True, alphabet=None, min_count=1, unk_token=None):
        """The vocabulary of ``text``: its distinct symbols, sorted.

        ``alphabet``: for level="char", use exactly these characters (in this
        order) instead of the ones seen.  ``min_count``: keep symbols seen at
        least this often (the rest become unknown; give ``unk_token``).
        """
        _check_level(level)
        if alphabet is not None and level == "char":
            return cls(list(dict.fromkeys(alphabet)), level, lowercase, unk_token)
        probe = cls(["x"], level, lowercase)
        counts = {}
        for token in probe.tokenize(text):
            counts[token] = counts.get(token, 0) + 1
        symbols = sorted(s for s, c in counts.items() if c >= min_count and s != unk_token)
        return cls(symbols, level, lowercase, unk_token)

    @property
    def size(self):
        """Number of symbols M (the unknown token included)."""
        return len(self.symbols)

    def __len__(self):
        return self.size

    def tokenize(self, text):
        """The list of symbols of ``text`` (characters, or words for level='word')."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}.")
        if self.lowercase:
            text = text.lower()
        return list(text) if self.level == "char" else _WORD.findall(text)

    def encode(self, text):
        """Ids of the symbols of ``text``: (T,) int64."""
        tokens = self.tokenize(text)
        unk = self.index.get(self.unk_token) if self.unk_token is not None else None
        ids = np.empty(len(tokens), dtype=np.int64)
        for t, token in enumerate(tokens):
            i = self.index.get(token, unk)
            if i is None:
                raise ValueError(
                    f"Vocabulary.encode: symbol {token!r} (position {t}) is not in the "
                    f"vocabulary of {self.size} symbols. Build the vocabulary with "
                    f"unk_token='<unk>', or filter the text (text_to_sequences(alphabet=...))."
                )
            ids[t] = i
        return ids

    def decode(self, ids):
        """The text of ids (characters joined, or words joined by spaces)."""
        ids = np.asarray(ids)
        if ids.size and (ids.dtype.kind not in "iu"):
            raise TypeError(f"Vocabulary.decode: ids must be integers; got dtype {ids.dtype}.")
        ids = ids.reshape(-1)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.size):
            bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
            raise ValueError(
                f"Vocabulary.decode: id {bad} is out of range; the vocabulary has ids "
                f"0..{self.size - 1}."
            )
        sep = "" if self.level == "char" else " "
        return sep.join(self.symbols[int(i)] for i in ids)

    def to_json(self):
        """A JSON string that :meth:`from_json` turns back into an equal vocabulary."""
        return json.dumps(
            {
                "symbols": list(self.symbols),
                "level": self.level,
                "lowercase": self.lowercase,
                "unk_token": self.unk_token,
            }
        )

    @classmethod
    def from_json(cls, s):
        """The vocabulary serialised by :meth:`to_json`."""
        d = json.loads(s)
        return cls(d["symbols"], d["level"], d["lowercase"], d["unk_token"])

    def __eq__(self, other):
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (self.symbols, self.level, self.lowercase, self.unk_token) == (
            other.symbols, other.level, other.lowercase, other.unk_token,
        )

    def __repr__(self):
        head = "".join(self.symbols[:30]) if self.level == "char" else " ".join(self.symbols[:8])
        return (
            f"Vocabulary(size={self.size}, level={self.level!r}, lowercase={self.lowercase}, "
            f"unk_token={self.unk_token!r}, symbols={head!r}{'...' if self.size > 30 else ''})"
        )


def _segments(text, split):
    """Raw pieces of ``text``: 'line' = lines; 'sentence' = sentences (paragraph-aware,
    wrapped lines joined); 'none' = the whole text."""
    if split == "line":
        return text.splitlines()
    if split == "none":
        return [text]
    if split == "sentence":
        out = []
        for paragraph in re.split(r"\n\s*\n", text):
            joined = " ".join(paragraph.split())
            out.extend(re.split(r"(?<=[.!?])\s+", joined))
        return out
    raise ValueError(f"split must be 'sentence', 'line' or 'none'; got {split!r}.")


def _normalize(segment, lowercase, alphabet):
    """Lower-case, keep only ``alphabet`` characters (whitespace -> ' ' when ' ' is in
    it), collapse runs of spaces."""
    if lowercase:
        segment = segment.lower()
    if alphabet is not None:
        space = " " if " " in alphabet else ""
        segment = "".join(c if c in alphabet else (space if c.isspace() else "") for c in segment)
    return " ".join(segment.split()) if (alphabet is None or " " in alphabet) else segment


def text_to_sequences(
    text,
    level="char",
    lowercase=True,
    alphabet=None,
    split="sentence",
    min_length=1,
    vocab=None,
):
    """Integer symbol sequences of a text for a discrete HMM (Rabiner 1989).

    Parameters
    ----------
    text : str
    level : "char" or "word"
    lowercase : bool
    alphabet : str or None
        Characters to keep (e.g. ``"abcdefghijklmnopqrstuvwxyz "``); others
        are dropped, whitespace becomes a space when space is in the
        alphabet.  For level="char" the vocabulary is exactly the alphabet.
    split : "sentence" (default), "line" or "none"
        Each sentence / non-empty line is one sequence.
    min_length : int, drop sequences with fewer symbols
    vocab : Vocabulary or None
        Encode with an existing vocabulary (e.g. the training one);
        default: build one from this text.

    Returns
    -------
    symbols : (T, 1) int64, the sequences concatenated
    lengths : (n_sequences,) int64 with sum(lengths) == T
    vocab : Vocabulary
    """
    if not isinstance(text, str):
        raise TypeError(f"text_to_sequences: text must be a str; got {type(text).__name__}.")
    _check_level(level)
    if alphabet is not None and (not isinstance(alphabet, str) or not alphabet):
        raise TypeError(f"alphabet must be a non-empty str or None; got {alphabet!r}.")
    if lowercase and alphabet is not None and alphabet != alphabet.lower():
        raise ValueError(
            f"alphabet {alphabet!r} has upper-case letters but lowercase=True removes them; "
            f"pass lowercase=False or a lower-case alphabet."
        )
    segments = [_normalize(s, lowercase, alphabet) for s in _segments(text, split)]
    if vocab is None:
        joined = ("" if level == "char" else " ").join(segments)  # no separator symbol
        vocab = Vocabulary.build(joined, level=level, lowercase=lowercase, alphabet=alphabet)
    elif not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a Vocabulary or None; got {type(vocab).__name__}.")
    encoded = [vocab.encode(s) for s in segments]
    encoded = [e for e in encoded if e.shape[0] >= max(int(min_length), 1)]
    if not encoded:
        raise ValueError(
            f"text_to_sequences: no sequence of at least {min_length} symbols is left after "
            f"normalisation (alphabet={alphabet!r}, split={split!r}). Check the text and the "
            f"alphabet."
        )
    lengths = np.array([e.shape[0] for e in encoded], dtype=np.int64)
    symbols = np.concatenate(encoded).reshape(-1, 1)  # (T, 1)
    return symbols, lengths, vocab


def load_embedded_text(name="devils-dictionary", include_notice=False):
    """The public-domain English text shipped with data_tools, as a str.

    ``"devils-dictionary"``: Ambrose Bierce, *The Devil's Dictionary* (1911),
    from Debian's ``dict-devil`` package (origin and public-domain status in
    ``data_tools/embedded/README.md``).  By default the text starts at its
    PREFACE; ``include_notice=True`` keeps the edition's title notice.
    """
    if name not in _TEXTS:
        raise ValueError(f"load_embedded_text: name must be one of {sorted(_TEXTS)}; got {name!r}.")
    with gzip.open(_EMBEDDED / _TEXTS[name], "rt", encoding="ascii") as f:
        text = f.read()
    if not include_notice:
        text = text[text.index("PREFACE"):]
    return text
