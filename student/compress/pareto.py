"""The compression report: a Markdown table and a Pareto plot (accuracy vs size / latency) over the teacher,
the student and every compression step."""

from __future__ import annotations

from pathlib import Path


def _rows(report: dict) -> list[dict]:
    teacher = report.get("teacher")
    rows = [teacher] if teacher and teacher.get("bytes") else []
    return rows + list(report["steps"])


def _p50(r: dict, b: str = "b1") -> float | None:
    return ((r.get("latency_ms") or {}).get(b) or {}).get("p50")


def pareto_front(rows: list[dict], cost: str) -> set[str]:
    """Names of rows no other row beats on both accuracy (higher) and cost (lower)."""
    def c(r):
        return r["bytes"] if cost == "bytes" else _p50(r)

    front = set()
    for r in rows:
        if c(r) is None:
            continue
        dominated = any(o is not r and c(o) is not None and o["accuracy"] >= r["accuracy"] and c(o) <= c(r)
                        and (o["accuracy"] > r["accuracy"] or c(o) < c(r)) for o in rows)
        if not dominated:
            front.add(r["name"])
    return front


def markdown_table(report: dict) -> str:
    rows = _rows(report)
    student_acc = report["steps"][0]["accuracy"]
    fs, fl = pareto_front(rows, "bytes"), pareto_front(rows, "latency")
    head = ("| model | runtime | accuracy | Δ vs student (pts) | macro-F1 | agreement | params | MB | "
            "b1 p50 ms | b1 p95 ms | b1 p50 ms with tokenizer | b32 p50 ms | Pareto (size / latency) |\n"
            + "|---" * 13 + "|\n")
    lines = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        agree = "—" if r.get("agreement") is None else f"{r['agreement']:.4f}"
        lines.append(
            f"| {r['name']} | {r.get('runtime', '')} | {r['accuracy']:.4f} | "
            f"{100 * (r['accuracy'] - student_acc):+.2f} | {r.get('macro_f1', float('nan')):.4f} | {agree} | "
            f"{r.get('params', 0):,} | {r['bytes'] / 1e6:.2f} | {lat.get('b1', {}).get('p50', float('nan')):.2f} | "
            f"{lat.get('b1', {}).get('p95', float('nan')):.2f} | "
            f"{lat.get('b1_with_tokenizer', {}).get('p50', float('nan')):.2f} | {lat.get('b32', {}).get('p50', float('nan')):.1f} | "
            f"{'✓' if r['name'] in fs else '·'} / {'✓' if r['name'] in fl else '·'} |")
    return head + "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(report)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, label in ((axes[0], "bytes", "size on disk (MB, log)"), (axes[1], "latency", "latency b1 p50 (ms, log)")):
        front = pareto_front(rows, key)
        pts = [(r["bytes"] / 1e6 if key == "bytes" else _p50(r), r["accuracy"], r["name"]) for r in rows]
        pts = [p for p in pts if p[0]]
        for x, y, name in pts:
            ax.scatter(x, y, c="tab:red" if name in front else "tab:blue", zorder=3)
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        fx = sorted((x, y) for x, y, n in pts if n in front)
        if fx:
            ax.step([p[0] for p in fx], [p[1] for p in fx], where="post", color="tab:red", alpha=0.5, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (gold)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{report['task']}: accuracy vs size and latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_pareto_report(report: dict, directory: Path) -> None:
    """``directory``/report.md (the table and its notes) and ``directory``/pareto.png."""
    directory = Path(directory)
    notes = _notes(report)
    (directory / "report.md").write_text(
        f"# Compression report: {report['task']}\n\n" + markdown_table(report) +
        "\nLatency: synthetic rows of fixed length, pinned threads (see compress.latency_*). "
        "Bytes: weights file (safetensors) or ONNX file.\n\n" + "".join(f"- {n}\n" for n in notes) +
        "\n![Pareto](pareto.png)\n")
    plot(report, directory / "pareto.png")


def _notes(report: dict) -> list[str]:
    notes = []
    for r in report["steps"]:
        info = r.get("info") or {}
        if r["kind"] == "magnitude":
            notes.append(f"{r['name']}: {info.get('sparsity', 0):.0%} of Linear weights are zero, but they are stored "
                         "densely: the file is as large and inference as slow as before. It saves bytes only with "
                         f"sparse storage (CSR estimate {info.get('sparse_bytes', 0) / 1e6:.2f} MB vs "
                         f"{info.get('dense_bytes', 0) / 1e6:.2f} MB dense) and no CPU time with dense kernels.")
        if r["kind"] == "vocab_trim":
            notes.append(f"{r['name']}: vocabulary {info.get('vocab_before')} -> {info.get('vocab_after')} tokens; "
                         f"eval [UNK] rate {info.get('eval_unk_rate_before')} -> {info.get('eval_unk_rate_after')}.")
        if "onnx_max_abs_diff_vs_torch" in info:
            notes.append(f"{r['name']}: ONNX fp32 export max |Δlogit| vs PyTorch = {info['onnx_max_abs_diff_vs_torch']:.2e}.")
    return notes
