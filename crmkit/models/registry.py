"""The model registry: ``<root>/<name>/<version>/model.joblib`` plus ``card.json``.

joblib files are pickles, and loading a pickle runs code: a model is only ever loaded
from the registry, after the sha256 of its bytes matches its card, and from those same
bytes (read once). Names are checked before they become paths.

The sha256 on the card catches corruption and a swapped file, not someone who can write
the registry: they can rewrite both. Against that, configure a signing key kept outside
the registry (``[model] key_file`` or ``CRMKIT_MODEL_KEY_FILE``): ``train`` and
``clv fit`` then sign each card with HMAC-SHA256 (which covers the model's sha256), and
every load refuses, before unpickling, a card that is unsigned or whose signature does not
match.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import io
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from crmkit.errors import ConfigError, ModelError, UsageError
from crmkit.models.card import CARD_VERSION, ModelCard

_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MODEL_FILE: Final = "model.joblib"
CARD_FILE: Final = "card.json"


@dataclass(frozen=True)
class ModelRef:
    """A model name and an optional version (the latest when None)."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


def parse_ref(text: str) -> ModelRef:
    """Parse ``NAME`` or ``NAME:VERSION``.

    Raises
    ------
    UsageError
        When the name has characters other than letters, digits, ``_ . -`` or the version
        is not a positive number.
    """
    name, _, version = text.partition(":")
    if not _NAME.match(name):
        raise UsageError(
            f"model name {name!r} must be 1-64 letters, digits, '_', '.' or '-' "
            "and start with a letter or digit"
        )
    if version and not (version.isdigit() and int(version) > 0):
        raise UsageError(f"model version {version!r} must be a positive number")
    return ModelRef(name, int(version) if version else None)


MIN_KEY_BYTES: Final = 16


def read_key(key_file: str | None, registry: Path) -> bytes | None:
    """Read the model signing key named by ``[model] key_file``, if one is configured.

    Raises
    ------
    ConfigError
        When the file cannot be read, holds fewer than 16 bytes, or lies inside the
        registry (whoever can write the models could then replace the key too).
    """
    if not key_file:
        return None
    path = Path(key_file)
    if path.resolve().is_relative_to(Path(registry).resolve()):
        raise ConfigError(f"[model] key_file {path} lies inside the registry {registry}")
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"[model] key_file {path}: cannot be read ({exc.strerror})") from exc
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"[model] key_file {path}: a key needs {MIN_KEY_BYTES} bytes or more")
    return key


def open_registry(root: Path, key_file: str | None) -> Registry:
    """Open the registry at ``root`` with the signing key named by ``[model] key_file``.

    Raises
    ------
    ConfigError
        As :func:`read_key`.
    """
    return Registry(root, read_key(key_file, root))


def _signature(key: bytes, card: Mapping[str, Any]) -> str:
    unsigned = {k: v for k, v in card.items() if k != "signature"}
    body = json.dumps(json.loads(json.dumps(unsigned, default=str)), sort_keys=True)
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


class Registry:
    """A directory of named, versioned models.

    Parameters
    ----------
    root
        The registry directory.
    key
        Signing key: cards are signed on save and must carry a matching signature to load.
    """

    def __init__(self, root: Path, key: bytes | None = None) -> None:
        self.root = Path(root)
        self.key = key

    def versions(self, name: str) -> list[int]:
        """Return the versions of ``name``, ascending."""
        parse_ref(name)
        base = self.root / name
        if not base.is_dir():
            return []
        return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())

    def names(self) -> list[str]:
        """Return the model names in the registry."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _NAME.match(p.name) and p.is_dir())

    def resolve(self, ref: ModelRef) -> Path:
        """Return the directory of ``ref``.

        Raises
        ------
        ModelError
            When there is no such model or version.
        """
        versions = self.versions(ref.name)
        if not versions:
            raise ModelError(
                f"no model named {ref.name!r} in {self.root}: train one with "
                f"`crmkit train --as-of DATE --horizon DAYS --name {ref.name}`"
            )
        version = versions[-1] if ref.version is None else ref.version
        if version not in versions:
            raise ModelError(
                f"model {ref.name!r} has no version {version} (versions: "
                f"{', '.join(map(str, versions))})"
            )
        return self.root / ref.name / str(version)

    def save(self, name: str, model: object, card: Mapping[str, Any]) -> tuple[int, Path]:
        """Store a new version of ``name``; return (version, directory).

        The files are written in a temporary directory that is renamed into place, so a
        version directory is always complete. The card is saved at the current card
        version (:data:`crmkit.models.card.CARD_VERSION`).
        """
        import joblib

        from crmkit.models.threads import pin_fit_threads

        parse_ref(name)
        pin_fit_threads(model)  # the same bytes however many cores were idle
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        blob = buffer.getvalue()
        base = self.root / name
        with self._lock(base):
            version = (self.versions(name) or [0])[-1] + 1
            tmp = base / f".tmp-{version}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            (tmp / MODEL_FILE).write_bytes(blob)
            full = {
                **card,
                "card_version": CARD_VERSION,
                "name": name,
                "version": version,
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
            if self.key is not None:
                full["signature"] = _signature(self.key, full)
            (tmp / CARD_FILE).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
            target = base / str(version)
            tmp.rename(target)
        return version, target

    @staticmethod
    @contextlib.contextmanager
    def _lock(base: Path) -> Iterator[None]:
        """Hold ``base/.lock`` so that concurrent saves take distinct version numbers.

        Unlike the store's lock this one waits: a save takes a moment.
        """
        try:
            base.mkdir(parents=True, exist_ok=True)
            fh = (base / ".lock").open("a+", encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"{base}: cannot write the model registry ({exc})") from exc
        with fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def card(self, ref: ModelRef) -> ModelCard:
        """Read the card of ``ref`` (:class:`~crmkit.models.card.ModelCard`).

        Raises
        ------
        ModelError
            When the model is missing or its card unreadable or malformed.
        """
        path = self.resolve(ref) / CARD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: unreadable model card ({exc})") from exc
        return ModelCard.from_json(data, str(path))

    def _check_signature(self, directory: Path, card: ModelCard) -> None:
        if self.key is None:
            return
        signature = card.get("signature")
        if not isinstance(signature, str):
            raise ModelError(
                f"{directory}: the model card is not signed and a signing key is configured: "
                "refusing to load it (retrain it with the key)"
            )
        if not hmac.compare_digest(signature, _signature(self.key, card.data)):
            raise ModelError(
                f"{directory}: the model card's signature does not match the configured key: "
                "refusing to load it (the card or model was changed, or another key signed it)"
            )

    def load(self, ref: ModelRef) -> tuple[object, ModelCard]:
        """Load a model after checking its bytes against the sha256 on its card.

        Raises
        ------
        ModelError
            Missing model, unreadable card, or a model file whose hash does not match.
        """
        import joblib

        directory = self.resolve(ref)
        card = self.card(ref)
        try:
            blob = (directory / MODEL_FILE).read_bytes()
        except OSError as exc:
            raise ModelError(f"{directory / MODEL_FILE}: cannot be read ({exc})") from exc
        self._check_signature(directory, card)
        if hashlib.sha256(blob).hexdigest() != card.sha256:
            raise ModelError(
                f"{directory / MODEL_FILE} does not match the sha256 on its card: refusing "
                "to load it (the file was changed or corrupted; retrain the model)"
            )
        from crmkit.models.moved import old_module_paths

        try:
            with old_module_paths():  # models saved before the package layout
                model = joblib.load(io.BytesIO(blob))  # hash-checked registry file
        except Exception as exc:  # any unpickling failure means a bad file: exit 5
            raise ModelError(f"{directory / MODEL_FILE}: cannot be loaded ({exc})") from exc
        method = {"clv": None, "uplift": "predict_uplift"}.get(card.kind, "predict_proba")
        if method is not None and not callable(getattr(model, method, None)):
            raise ModelError(f"{directory / MODEL_FILE} has no {method}: it is not a "
                             f"{card.kind} model; retrain it")  # fmt: skip
        return model, card


def list_models(registry: Registry) -> list[dict[str, Any]]:
    """One summary row per model version (newest version last within a name)."""
    rows = []
    for name in registry.names():
        for version in registry.versions(name):
            card = registry.card(ModelRef(name, version))
            metrics = card.get("validation_metrics") or [{}]
            rows.append(
                {
                    "model": f"{name}:{version}",
                    "created": card.get("created"),
                    "kind": card.get("kind"),
                    "as_of": card.get("as_of"),
                    "horizon_days": card.get("horizon_days"),
                    "training_rows": card.get("training_rows"),
                    "roc_auc": metrics[0].get("roc_auc"),
                }
            )
    return rows
