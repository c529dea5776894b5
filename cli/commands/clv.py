from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    AsOfOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    RegistryOpt,
    StoreOpt,
    emit_json,
    human,
    open_registry,
    parse_date,
    settings,
    user_errors,
)
from crmkit_cli.tables import table

app = typer.Typer(help="Probabilistic customer lifetime value (BG/NBD + Gamma-Gamma).")


@app.command("fit")
def fit(
    as_of: AsOfOpt,
    name: Annotated[
        str, typer.Option("--name", metavar="NAME", help="Model name in the registry.")
    ] = "clv",
    penalty: Annotated[
        float,
        typer.Option(
            "--penalty", metavar="L2", min=0, max=1e6, help="L2 penalty on the parameters."
        ),
    ] = 0.0,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fit BG/NBD and Gamma-Gamma on customers as of a date.

    Maximum likelihood, on every customer with a purchase before the date.

    Saves NAME/VERSION/ in the registry with a card: parameters, log-likelihoods,
    convergence and the data window.

    Example: crmkit clv fit --as-of 2011-09-01 --name clv
    """
    from crmkit.models.clv import fit_store
    from crmkit.models.registry import parse_ref
    from crmkit.store.core import Store

    with user_errors():
        cfg = settings(config)
        ref = parse_ref(name)
        model, card = fit_store(Store(store), parse_date(as_of, "--as-of"), cfg.features, penalty)
        version, path = open_registry(cfg, registry).save(ref.name, model, card)
    summary = {"model": f"{ref.name}:{version}", "path": str(path), **card}
    if as_json:
        emit_json(summary)
    if quiet:
        return
    params = card["parameters"]
    rows = [[f"BG/NBD {k}", f"{v:.4g}"] for k, v in params["bgnbd"].items()]
    rows += [[f"Gamma-Gamma {k}", f"{v:.4g}"] for k, v in params["gamma_gamma"].items()]
    for part, info in card["fit"].items():
        rows.append([f"{part} log-likelihood", info["log_likelihood"]])
        rows.append([f"{part} converged", f"{info['converged']} ({info['iterations']} iterations)"])
    human.print(table(f"CLV model {ref.name}:{version} as of {as_of}", ["", "value"], rows))


@app.command("predict")
def predict(
    as_of: AsOfOpt,
    horizon: Annotated[
        int, typer.Option("--horizon", metavar="DAYS", min=1, max=36500, help="Days ahead.")
    ],
    out: Annotated[
        Path, typer.Option("--out", metavar="PATH", help="Output file (.csv or .parquet).")
    ],
    model: Annotated[
        str, typer.Option("--model", metavar="NAME[:VERSION]", help="NAME or NAME:VERSION.")
    ] = "clv",
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Predict purchases, P(alive), spend and discounted CLV.

    Per customer: expected purchases, P(alive), P(no purchase), spend and discounted CLV.

    Example: crmkit clv predict --as-of 2011-09-01 --horizon 90 --out clv.parquet
    """
    from crmkit.io.export import write_table
    from crmkit.models.registry import parse_ref
    from crmkit.models.scoring import clv_predictions, clv_summary
    from crmkit.store.core import Store

    with user_errors():
        cfg = settings(config)
        reg = open_registry(cfg, registry)
        date = parse_date(as_of, "--as-of")
        frame = clv_predictions(Store(store), date, horizon, reg, parse_ref(model), cfg)
        write_table(frame, out)
    summary = {"out": str(out), **clv_summary(frame)}
    if as_json:
        emit_json(summary)
    if not quiet:
        rows = [[k.replace("_", " "), v] for k, v in summary.items()]
        human.print(table(f"CLV as of {as_of}, {horizon} days", ["", "value"], rows))
