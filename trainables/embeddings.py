"""The node-feature embeddings of the GCN head: one entry per embedding, the one home of every rule about one.

Why here: what an embedding is (how many columns its H0 has, whether it takes `pca_dim`, whether it is
computed from the stage-1 features) used to be repeated in the config's checks, the parameter counts,
`imlgcn params`, the console and four report tables. They all read this table now. It imports no project
code, so trainables.config and every room of trainables and study can read it without an import circle.

H0 is the C x in_dim matrix of node features the first graph convolution reads (C labels):
- word: GloVe vectors of the label names, in_dim = their width (WORD_DIM = 300 for the packaged ones);
- fi: F_I, row j = the mean stage-1 feature of the training images with label j, in_dim = d (the backbone's
  pooled feature size);
- fpca: F_PCA = the first k principal-component scores of F_I, in_dim = k = pca_dim, or C when pca_dim = 0;
- controls: fi_centred = F_I minus its mean row (in_dim = d); random = standard normal, fixed by the seed
  (in_dim = k, as fpca): node features with no label information;
- none: no GCN head (the direct model: backbone + linear head).

Adding an embedding: an entry here, and the function that computes its H0 in trainables/stages/gcn_inputs.py
(its table H0_BUILDERS, keyed by the entry's name).
"""

from __future__ import annotations

from dataclasses import dataclass

WORD_DIM = 300  # GloVe vectors, as ML-GCN
# what H0's width (in_dim) is: the columns of a GCN head's node features
NO_HEAD, WORD, FEATURE_DIM, COMPONENTS = "", "word", "d", "k"


@dataclass(frozen=True)
class Embedding:
    """One node-feature embedding and what the rest of the code needs to know about it."""

    name: str  # the value of TrialConfig.embedding
    width: str  # NO_HEAD (no GCN) | WORD (the word vectors' width) | FEATURE_DIM (d) | COMPONENTS (k)
    label: str  # a short description, for help texts
    from_features: bool = False  # H0 is computed from stage 1's features F_I (random without a trained stage 1)
    control: bool = False  # a control of the paper's question, not a method

    @property
    def has_head(self) -> bool:
        """Whether the model has a GCN head (every embedding but none)."""
        return self.width != NO_HEAD

    @property
    def takes_pca_dim(self) -> bool:
        """Whether `pca_dim` sets H0's width: k = pca_dim, or C when pca_dim = 0."""
        return self.width == COMPONENTS

    def input_width(self, d: int | None, k: int | None, word_dim: int | None = WORD_DIM) -> int | None:
        """in_dim, the columns of H0: word -> word_dim; d-wide -> d; k-wide -> k; none -> None (no GCN)."""
        return {NO_HEAD: None, WORD: word_dim, FEATURE_DIM: d, COMPONENTS: k}[self.width]


EMBEDDINGS: dict[str, Embedding] = {e.name: e for e in (
    Embedding("none", NO_HEAD, "the direct model: backbone + linear head, no GCN"),
    Embedding("word", WORD, "GloVe vectors of the label names (ML-GCN)"),
    Embedding("fi", FEATURE_DIM, "F_I: each label's mean stage-1 image feature", from_features=True),
    Embedding("fpca", COMPONENTS, "F_PCA: the first k principal components of F_I (the paper's)", from_features=True),
    Embedding("fi_centred", FEATURE_DIM, "control: F_I minus its mean row", from_features=True, control=True),
    Embedding("random", COMPONENTS, "control: standard normal features fixed by the seed, k columns", control=True),
)}
NAMES = tuple(EMBEDDINGS)


def embedding(name: str) -> Embedding:
    """The entry `name`; an unknown name is a ValueError listing the known ones."""
    if name not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {NAMES}, got {name!r}")
    return EMBEDDINGS[name]


def key_applies(key: str, embedding: object) -> bool:
    """Whether config key `key` means anything for a trial of `embedding` (any value: "" or NaN for a table row
    without one): every key does but `pca_dim`, which only an embedding that takes it reads. Reports show '-'
    for a key that does not apply, the console leaves it out and screening's head key blanks it."""
    if key != "pca_dim":
        return True
    entry = EMBEDDINGS.get(embedding) if isinstance(embedding, str) else None
    return entry is not None and entry.takes_pca_dim
