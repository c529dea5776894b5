"""The model card: what a saved model was trained on, read and checked in one place.

A card is the JSON file beside every saved model (``card.json``). :class:`ModelCard`
reads it once, with the fields every kind shares typed (kind, name, version, feature
version, features, hash), and keeps the kind's own content (validation tables, arms, CLV
fits) readable as a mapping. :meth:`ModelCard.require` is the one compatibility check:
the kind a command needs, and the feature version this crmkit computes.

Cards written before the ``card_version`` key (crmkit 0.1.0) read as version 1; churn
cards name their classifier (``blend``, ``hgb``, ``logreg``) under ``kind``, or nothing;
both read as kind ``churn``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from crmkit.errors import ModelError
from crmkit.features.names import FEATURE_VERSION

#: The card format this crmkit writes; earlier ones are read and upgraded on load.
CARD_VERSION: Final = 2
KINDS: Final = ("churn", "uplift", "clv")
#: What a churn card's ``kind`` key holds: its classifier.
CLASSIFIERS: Final = ("churn", "blend", "hgb", "logreg")
Kind = Literal["churn", "uplift", "clv"]
#: What to do when a model of another feature version is met, by kind.
_REDO: Final = {"churn": "retrain it", "uplift": "retrain it", "clv": "refit it"}
_LABEL: Final = {"churn": "churn model", "uplift": "uplift model", "clv": "CLV model"}


def _name_of(data: Mapping[str, Any]) -> str:
    name, version = data.get("name"), data.get("version")
    return f"{name}:{version}" if version is not None else str(name)


@dataclass(frozen=True)
class ModelCard(Mapping[str, Any]):
    """A saved model's card: typed shared fields, and the whole card as a mapping."""

    #: ``churn``, ``uplift`` or ``clv`` (a card of another kind reads, and fails
    #: :meth:`require`).
    kind: str
    name: str | None
    version: int | None
    feature_version: int | None
    features: tuple[str, ...]
    sha256: str | None
    card_version: int
    data: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Any, where: str = "model card") -> ModelCard:  # noqa: ANN401
        """Read a card as saved (any card version); check the shared fields' types.

        Raises
        ------
        ModelError
            When the card is not an object, or a shared field has the wrong type.
        """
        if not isinstance(data, dict):
            raise ModelError(f"{where}: a model card must be a JSON object")
        given = data.get("kind") or "churn"
        if not isinstance(given, str):
            raise ModelError(f"{where}: the card's kind is not a name")
        # a churn card names its classifier there (blend, hgb, logreg), or nothing
        kind = "churn" if given in CLASSIFIERS else given
        features = data.get("features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ModelError(f"{where}: the card's features are not a list of names")
        fields: dict[str, Any] = {}
        for key, kinds in (("feature_version", int), ("version", int), ("card_version", int),
                           ("name", str), ("sha256", str)):  # fmt: skip
            value = data.get(key)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise ModelError(f"{where}: the card's {key} is not a {kinds.__name__}")
            fields[key] = value
        return cls(
            kind=kind,
            name=fields["name"],
            version=fields["version"],
            feature_version=fields["feature_version"],
            features=tuple(features),
            sha256=fields["sha256"],
            card_version=fields["card_version"] or 1,
            data=dict(data),
        )

    @property
    def classifier(self) -> str | None:
        """The classifier of a churn model (``blend``, ``hgb``, ``logreg``), else None."""
        given = self.data.get("kind")
        return given if self.kind == "churn" and given in CLASSIFIERS[1:] else None

    def to_json(self) -> dict[str, Any]:
        """Return the card as it is saved, at the current card version."""
        return {**self.data, "card_version": CARD_VERSION}

    def require(self, kind: Kind) -> None:
        """Check that this card's model is a ``kind`` model of this crmkit's features.

        Raises
        ------
        ModelError
            Another kind, or another feature version (naming what to do).
        """
        label = _LABEL[kind]
        if self.kind != kind:
            article = "an" if kind == "uplift" else "a"
            raise ModelError(
                f"model {_name_of(self.data)} is not {article} {label} (it is {self.kind})"
            )
        if self.feature_version != FEATURE_VERSION:
            raise ModelError(
                f"{label} {_name_of(self.data)} was trained on feature version "
                f"{self.feature_version}, this crmkit computes version {FEATURE_VERSION}: "
                f"{_REDO[kind]}"
            )

    def __getitem__(self, key: str) -> Any:  # noqa: ANN401
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
