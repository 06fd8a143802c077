"""Two baselines scored on the same grouped folds as the transformer, so the model card
can show whether fine-tuning earns its cost: TF-IDF + logistic regression, and keyword
rules written from the annotation guide's cues."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline

# Cues per label, from ANNOTATION_GUIDE.md's "typical cues" column (and obvious variants).
KEYWORD_CUES: dict[str, str] = {
    "fast_track_membership": (
        r"accelerat\w* (accession|membership|path)|simplified accession|fast[- ]track|expedit\w*"
        r"|invit\w* (ukraine )?(to (join )?(nato|the alliance) )?now|clear timetable|timetable for"
        r"|membership action plan|\binvitation to (join|membership)|despite the (ongoing )?hostilities"
    ),
    "interim_guarantees": (
        r"security guarantee|security umbrella|security assurance|security commitment|security agreement"
        r"|bilateral (security )?(agreement|deal|pact)|long[- ]term (security )?(assistance|support|commitment)"
        r"|multi-year|g7 declaration|until ukraine (becomes|joins)"
    ),
    "post_war_accession": (
        r"after the (ongoing )?war|when the war (ends|is over)|once the war|end (of|to) (this|the) war"
        r"|war (ends|is over)|post-?war|while the war (goes on|continues)"
    ),
    "opposition": (
        r"undermin\w*|not a substitute|cannot replace|\boppos\w*|\breject\w*|not enjoy unanimous"
        r"|against (ukraine'?s )?(membership|accession)|never (be )?admitted|\bthreat\b|keep ukraine out"
        r"|pushed back|not (be )?ready to"
    ),
}


class KeywordRules:
    """Label a statement when one of the label's cues matches (case-insensitive)."""

    def __init__(self, labels: Sequence[str], cues: dict[str, str] = KEYWORD_CUES) -> None:
        self.labels = list(labels)
        self.patterns = [re.compile(cues[name], re.IGNORECASE) for name in self.labels]

    def fit(self, texts: Sequence[str], targets: np.ndarray) -> KeywordRules:
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.array(
            [[1.0 if p.search(t) else 0.0 for p in self.patterns] for t in texts], dtype=np.float32
        ).reshape(len(texts), len(self.labels))


def tfidf_logreg(seed: int) -> Pipeline:
    """Word 1-2 grams + char 3-5 grams would overfit this little data; word n-grams with
    sublinear tf and balanced class weights are the honest classic baseline."""
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, strip_accents="unicode"),
        OneVsRestClassifier(LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=seed)),
    )


class TfidfBaseline:
    def __init__(self, seed: int) -> None:
        self.model = tfidf_logreg(seed)

    def fit(self, texts: Sequence[str], targets: np.ndarray) -> TfidfBaseline:
        self.model.fit(list(texts), targets.astype(int))
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.predict_proba(list(texts)), dtype=np.float32)
