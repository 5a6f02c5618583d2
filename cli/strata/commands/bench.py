"""`strata bench`: the benchmark scenarios (strata.bench), printed as ratios and rates."""

from __future__ import annotations

import click

from strata.bench import Bench, Options, load_scenarios, missed_goals
from strata.context import Context, pass_context
from strata.embedded import find_bindir
from strata.errors import CheckFailed, ConfigurationError
from strata.output import emit_json, notice, option_json, say, table

SCENARIOS = load_scenarios()


@click.command()
@click.option("--scenario", "names", type=click.Choice(sorted(SCENARIOS)), multiple=True,
              help="Run only this scenario (repeatable). Default: all.")
@click.option("--quick", is_flag=True, help="A short run that proves the scenario works; its numbers mean little, so missed goals do not fail it.")
@click.option("--duration", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Seconds per pgbench run (default 15, quick 2).")
@click.option("--events", type=click.IntRange(min=1000), metavar="N",
              help="Ledger size for the verification speed (default 1000000, quick 20000).")
@click.option("--clients", type=click.IntRange(min=1, max=64), default=8, show_default=True,
              help="pgbench clients.")
@click.option("--keep", is_flag=True, help="Keep the scratch database instead of dropping it.")
@click.option("--link-rtt", type=click.FloatRange(min=0, max=100), default=0.5, show_default=True, metavar="MS",
              help="orders: also measure through a relay adding this round-trip time, as from an application "
                   "host to its database; the goals apply there. 0: localhost only, goals apply there.")
@option_json
@pass_context
def bench(ctx: Context, names: tuple[str, ...], quick: bool, duration: float | None, events: int | None,
          clients: int, keep: bool, link_rtt: float, as_json: bool) -> None:
    """Measure Strata on the connected server, in a scratch database it creates and drops.

    Each scenario (see --scenario) runs pgbench custom scripts and timed runs on this machine
    and prints its numbers next to their goals: ledger (audited writes against plain ones,
    commit-to-seal time, `strata audit verify` speed), orders (one-call app functions against
    an ORM-style client). Needs CREATEDB on the server. Exits 1 if a goal is missed (not with --quick).
    """
    pgbench = find_bindir() / "pgbench"
    if not pgbench.exists():
        raise ConfigurationError(f"pgbench is not installed next to the server binaries ({pgbench}).")
    options = Options(quick=quick, duration=duration, events=events, clients=clients, keep=keep,
                      link_rtt=link_rtt / 1000)
    results, errors = {}, {}
    for name in names or sorted(SCENARIOS):
        scenario = SCENARIOS[name]
        notice(f"running scenario {name}: {scenario.summary}{' (quick)' if quick else ''}")
        try:
            with Bench(ctx.project, ctx.url, options, pgbench) as scratch:
                if keep:
                    notice(f"keeping the scratch database {scratch.name}")
                results[name] = scenario.run(scratch)
        except ConfigurationError:
            raise
        except Exception as err:  # noqa: BLE001 - one scenario's failure must not hide the others' numbers
            errors[name] = f"{type(err).__name__}: {err}" if not isinstance(err, CheckFailed) else str(err)
            notice(f"scenario {name} failed: {errors[name]}")
    missed = missed_goals(results)
    if as_json:
        emit_json({"quick": quick, "scenarios": {n: [m.as_dict() for m in ms] for n, ms in results.items()},
                   "goals_missed": missed, "errors": errors})
    else:
        for name, metrics in results.items():
            table(f"scenario {name}", ["metric", "value", "goal", "", "detail"],
                  [(m.name, format_value(m), m.goal, {True: "ok", False: "MISSED", None: ""}[m.met], m.detail) for m in metrics])
        if not missed:
            say("Every goal met.")
        else:
            say(f"{len(missed)} goal(s) missed" + (" (a quick run: its numbers mean little, so this does not fail it)." if quick else "."))
    if errors:
        raise CheckFailed(f"scenario(s) failed: {'; '.join(f'{n}: {e}' for n, e in errors.items())}")
    if missed and not quick:
        raise CheckFailed(f"benchmark goals missed: {'; '.join(missed)}.")


def format_value(m) -> str:
    """A metric's value for the table: whole numbers (counts, µs, events/s) as they are, with
    thousands separators; measures and ratios to two decimal places."""
    if m.value is None:
        return "n/a"
    number = f"{m.value:,}" if isinstance(m.value, int) else f"{m.value:.2f}"
    return f"{number} {m.unit}" if m.unit else number


COMMANDS = [bench]
