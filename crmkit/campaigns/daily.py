"""The daily job: ingest the inbox, score with the latest model, write the target list.

One store lock covers the whole run, so a second run started meanwhile exits at once
(code 4). Each step is logged as a JSON line in ``<store>/logs/run.jsonl``: start, each
step with its counts and duration, and always an end line with the exit code, the steps
that completed and, on failure, the error.

Each step commits on its own. The ingest step commits the inbox's rows and only then
moves its files to ``inbox/processed/``; if a later step fails (no model: exit 5), those
rows stay in the store and the files stay in ``processed/``, and no target list is written
for the day. Running the day again after fixing the cause ingests nothing twice (the files
are gone from the inbox, and a file's content hash is known anyway) and writes the list.
The targets step records the day's list in the ledger before it writes the list's files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmkit.campaigns.candidates import Candidates, candidates
from crmkit.campaigns.lists import TargetResult, write_targets
from crmkit.campaigns.names import check_campaign
from crmkit.campaigns.run_files import RunLog, inbox_files, move_processed
from crmkit.campaigns.targeting import Uplift, check_policy
from crmkit.config.settings import Settings
from crmkit.errors import ConfigError, CrmkitError
from crmkit.ingest import ingest_files
from crmkit.ingest.core import ingest_query
from crmkit.io.sql import Query
from crmkit.io.uri import Database
from crmkit.models.registry import open_registry, parse_ref
from crmkit.models.scoring import ScoreResult, score_customers
from crmkit.progress import ProgressFn, prefixed
from crmkit.store.core import Store


@dataclass(frozen=True)
class RunOptions:
    """What ``crmkit run`` does on a given day."""

    date: dt.date
    campaign: str
    inbox: Path | None
    out_dir: Path
    registry: Path
    model: str | None = None
    fmt: str = "csv"
    replace: bool = False
    dry_run: bool = False
    #: A database query to pull new transactions from before scoring.
    pull: Query | None = None
    #: A database and table to write the contact list into.
    destination: tuple[Database, str] | None = None


@dataclass(frozen=True)
class RunResult:
    """Outcome of a daily run."""

    date: dt.date
    ingested_files: list[str]
    scored: int
    targets: TargetResult
    model: str
    skipped_files: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the CLI; inbox files passed over join the warnings."""
        targets = self.targets.summary()
        skipped = [f"inbox file passed over: {s}" for s in self.skipped_files]
        return {
            "date": str(self.date),
            "model": self.model,
            "ingested_files": self.ingested_files,
            "skipped_files": list(self.skipped_files),
            "scored": self.scored,
            **targets,
            "warnings": [*skipped, *targets["warnings"]],
        }


def score_for(
    store: Store,
    options: RunOptions,
    settings: Settings,
    *,
    narrow: bool = True,
    for_list: bool = False,
    progress: ProgressFn | None = None,
) -> ScoreResult:
    """Score the store as of the day with the options' model (default: ``[model] name``).

    ``narrow`` (the default) keeps only the columns a list reads in memory
    (:data:`~crmkit.models.bucketed.LIST_COLUMNS`); ``for_list`` only the rows of the
    list's candidates (:func:`~crmkit.campaigns.candidates.candidates`).
    """
    ref = parse_ref(options.model or settings.model.name)
    registry = open_registry(options.registry, settings.model.key_file)
    split = candidates(settings.targeting) if for_list else None
    return score_customers(
        store, options.date, ref, registry, settings.segments, settings.model.explain_rows,
        progress=progress, narrow=narrow, split=split,
    )  # fmt: skip


def targets_for(
    store: Store,
    options: RunOptions,
    settings: Settings,
    scores: ScoreResult | None = None,
    *,
    locked: bool = False,
    progress: ProgressFn | None = None,
) -> TargetResult:
    """Score (unless ``scores`` is given) and write the day's list: ``crmkit targets``.

    The list takes the rows of ``scores`` (:meth:`~crmkit.models.scoring.ScoreResult.hand_over`).
    """
    check_campaign(options.campaign)
    check_policy(settings.targeting)
    if scores is None:
        scores = score_for(
            store, options, settings, for_list=True, progress=prefixed(progress, "score")
        )
    policy, uplift, gate = settings.targeting, None, tuple[str, ...]()
    if policy.policy == "uplift":
        uplift, gate = uplift_for(store, options, settings)
        if uplift is None:  # no arm with evidence, and the fallback is value at risk
            policy = dataclasses.replace(policy, policy="value_at_risk")
    result = write_targets(
        Candidates(*scores.hand_over()),
        store,
        options.campaign,
        options.date,
        policy,
        options.out_dir,
        fmt=options.fmt,
        locked=locked,
        replace=options.replace,
        dry_run=options.dry_run,
        uplift=uplift,
        explainer=scores.explainer,
        progress=prefixed(progress, "list"),
    )
    result = dataclasses.replace(result, warnings=(*gate, *result.warnings))
    if options.destination is None or options.dry_run:
        return result
    from crmkit.io.destination import write_list

    db, table = options.destination
    written = write_list(db, table, result.contacts, options.campaign, options.date)
    return dataclasses.replace(result, destination={"uri": db.label, **written.to_json()})


def uplift_for(
    store: Store, options: RunOptions, settings: Settings
) -> tuple[Uplift | None, tuple[str, ...]]:
    """Predict the day's uplifts for the ``uplift`` policy with ``[targeting] uplift_model``.

    Only the arms with evidence (:mod:`crmkit.models.uplift_evidence`) are kept; None
    when no arm has any and ``[targeting] uplift_evidence`` falls back to value at risk.
    Returns the warnings of the gate beside.

    Raises
    ------
    ModelError
        No such uplift model, one that fails its integrity check, or no arm with
        evidence under ``uplift_evidence = "refuse"`` (exit 5).
    ConfigError
        A treatment of the model without a cost.
    """
    from crmkit.models.uplift import score_uplift
    from crmkit.models.uplift_evidence import gated_arms
    from crmkit.models.uplift_support import support_warnings

    policy = settings.targeting
    registry = open_registry(options.registry, settings.model.key_file)
    frame, card = score_uplift(
        store, options.date, registry, parse_ref(policy.uplift_model),
        outside=policy.uplift_outside,
    )  # fmt: skip
    free = sorted(set(card["arms"]) - set(policy.costs))
    if free and policy.default_cost is None:
        raise ConfigError(
            f'[targeting] policy = "uplift" weighs each treatment\'s expected gain against its '
            f"cost: give treatment(s) {', '.join(free)} of uplift model "
            f"{card['name']}:{card['version']} a cost in [targeting.costs] (0 for a free one) "
            "or set [targeting] default_cost"
        )
    arms, warnings = gated_arms(card, policy.uplift_evidence)
    if not arms:
        return None, (*warnings, "the list is ranked by value at risk instead")
    kept = frame.filter(frame["treatment"].is_in(arms))
    warnings = [*warnings, *support_warnings(kept, policy.uplift_outside)]
    if policy.uplift_outside == "exclude" and "outside_support" in kept.columns:
        kept = kept.filter(~kept["outside_support"])
    return Uplift(f"{card['name']}:{card['version']}", kept), tuple(warnings)


def run_daily(
    store: Store,
    options: RunOptions,
    settings: Settings,
    now: Callable[[], dt.datetime],
    progress: ProgressFn | None = None,
) -> RunResult:
    """Run the daily job under one lock; log every step; re-raise failures after logging.

    ``progress`` hears of the ingest, of each pass of the scoring and of the list's reasons.

    Raises
    ------
    StoreLockedError
        Another run or writer holds the store.
    BadInputError, ModelError, UsageError
        As the steps raise them; steps completed before stay committed (see above).
    """
    check_campaign(options.campaign)
    check_policy(settings.targeting)
    ref = parse_ref(options.model or settings.model.name)
    if options.dry_run:
        return _dry_run(store, options, settings, progress)
    log = RunLog(store, now)
    # logged before the lock is taken, so that a run refused by it leaves its lines too
    log.write("start", date=options.date, campaign=options.campaign, model=str(ref))
    done: list[str] = []
    try:
        with store.lock():
            result = _steps(store, options, settings, log, now, done, progress)
    except CrmkitError as exc:
        log.write("end", exit_code=exc.exit_code, error=str(exc), completed=done)
        raise
    except BaseException as exc:
        log.write("end", exit_code=1, error=type(exc).__name__, completed=done)
        raise
    log.write("end", exit_code=0, completed=done)
    return result


def _dry_run(
    store: Store, options: RunOptions, settings: Settings, progress: ProgressFn | None
) -> RunResult:
    """Score the store as it is and build the day's list; ingest, record and write nothing.

    The inbox's files are listed as pending: their rows are not in these scores.
    """
    files, skipped = inbox_files(options.inbox) if options.inbox else ([], [])
    scores = score_for(
        store, options, settings, for_list=True, progress=prefixed(progress, "score")
    )
    targets = targets_for(store, options, settings, scores, progress=progress)
    model = f"{scores.card['name']}:{scores.card['version']}"
    pending = tuple(f"{f.name}: not ingested (dry run)" for f in files)
    if options.pull is not None:
        pending += (f"{options.pull.database.label}: not pulled (dry run)",)
    return RunResult(options.date, [], scores.customers, targets, model, (*pending, *skipped))


def _ingest_step(
    store: Store,
    options: RunOptions,
    settings: Settings,
    now: Callable[[], dt.datetime],
    files: list[Path],
    counts: dict[str, Any],
) -> None:
    """Ingest the inbox's files (then move them to ``processed/``) and pull the query."""
    inbox = options.inbox
    if inbox and files:
        report = ingest_files(
            files, store, settings.ingest, now=now(), store_config=settings.store, locked=True
        )
        counts.update(
            files=len(files), rows_read=report.rows_read, rows_stored=report.rows_stored,
            rows_duplicate=report.rows_duplicate, rows_quarantined=report.rows_quarantined,
        )  # fmt: skip
        move_processed(files, inbox, now().strftime("%Y%m%dT%H%M%S"))
    else:
        counts.update(files=0)
    if options.pull is not None:
        pulled = ingest_query(
            options.pull, store, settings.ingest, now=now(), store_config=settings.store,
            locked=True,
        )  # fmt: skip
        counts.update(
            source=pulled.files[0].source, source_rows_read=pulled.rows_read,
            source_rows_stored=pulled.rows_stored, source_rows_duplicate=pulled.rows_duplicate,
            source_rows_quarantined=pulled.rows_quarantined,
        )  # fmt: skip


def _steps(
    store: Store,
    options: RunOptions,
    settings: Settings,
    log: RunLog,
    now: Callable[[], dt.datetime],
    done: list[str],
    progress: ProgressFn | None = None,
) -> RunResult:
    counts: dict[str, Any] = {}
    files, skipped = inbox_files(options.inbox) if options.inbox else ([], [])
    with log.step("ingest", counts):
        if skipped:
            counts.update(skipped=skipped)
        _ingest_step(store, options, settings, now, files, counts)
    done.append("ingest")
    if progress is not None:
        progress(1, 1, f"ingest: {len(files)} file(s)")
    score_counts: dict[str, Any] = {}
    target_counts: dict[str, Any] = {}
    with log.step("score", score_counts):
        scores = score_for(
            store, options, settings, for_list=True, progress=prefixed(progress, "score")
        )
        model = f"{scores.card['name']}:{scores.card['version']}"
        score_counts.update(customers=scores.customers, model=model)
    done.append("score")
    with log.step("targets", target_counts):
        targets = targets_for(store, options, settings, scores, locked=True, progress=progress)
        target_counts.update(
            status=targets.status,
            contact_file=targets.paths["contacts"],
            assignment_file=targets.paths["assignments"],
            destination=targets.destination,
            warnings=list(targets.warnings),
            **targets.summary()["groups"],
        )
    done.append("targets")
    return RunResult(
        options.date, [str(f) for f in files], scores.customers, targets, model, tuple(skipped)
    )
