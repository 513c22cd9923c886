"""A full disk is a named error (DiskFull, exit 2) naming the path and the bytes needed, never exit 1 with
a traceback; nothing is marked complete and nothing half-written is left to eat the rerun's space.

The disk is a real one: a small tmpfs mounted for the test (root only; skipped with the reason where
mount is not permitted), filled with a file until the bytes left are known.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from zuoxiao.core.errors import EXIT_BAD_INPUT, DiskFull, user_error


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@contextmanager
def small_disk(path: Path, size_kib: int = 1024, leave: int = 0):
    """A tmpfs of ``size_kib`` at ``path``, filled by ``path/filler`` to leave about ``leave`` bytes free
    (whole 4 KiB pages); yields the filler's path (delete it to give the space back)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill ({done.stderr.strip() or 'mount failed'}); "
                    "the full-disk tests need root (CAP_SYS_ADMIN)")
    try:
        filler = path / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, _free(path) - leave))
        assert _free(path) <= leave
        yield filler
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_shard_write_names_the_exact_bytes_needed_and_leaves_no_partial_file(tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from zuoxiao.pipelines.write import COMPRESSION, write_table

    rng = np.random.default_rng(0)
    table = pa.table({"id": [f"r{i}" for i in range(3000)], "x": rng.standard_normal(3000)})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression=COMPRESSION, use_compliant_nested_type=True, row_group_size=512,
                   write_statistics=True)
    needed = len(buf.getvalue())  # what the shard writer will ask the disk for
    with small_disk(tmp_path / "disk", leave=8192) as filler:
        (filler.parent / "shards").mkdir()
        free = _free(filler.parent)
        assert needed > free  # ~34 KB of random doubles into a few KiB
        target = filler.parent / "shards" / "part-00000-of-00001.parquet"
        with pytest.raises(DiskFull) as err:
            write_table(table, str(target), 512)
        msg = str(err.value)
        expected = (f"no space left on device writing {target}: {needed:,} bytes ({needed / 2**20:.2f} MiB) "
                    f"needed, {free:,} bytes")
        assert msg.startswith(expected), (msg, expected)
        assert "nothing was marked complete" in str(err.value) and err.value.exit_code == EXIT_BAD_INPUT
        assert not target.exists() and _free(filler.parent) == free  # the partial file is gone


def test_checkpoint_on_a_full_disk_is_disk_full_and_leaves_no_checkpoint(tmp_path):
    import torch
    from accelerate import Accelerator

    from zuoxiao.core.checkpoint import Checkpointer, complete_checkpoints, state_bytes

    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(512, 512)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 512)).sum().backward()
    opt.step()
    # weights, exp_avg and exp_avg_sq of 512*512 + 512 floats, and one float32 step per parameter
    assert state_bytes(model, opt) == 3 * (512 * 512 + 512) * 4 + 2 * 4 == 3_151_880
    model, opt = acc.prepare(model, opt)
    with small_disk(tmp_path / "disk", size_kib=1024) as filler:
        filler.unlink()  # 1 MiB free: less than the 3 MB the checkpoint needs
        free = _free(filler.parent)
        ckpt = Checkpointer(acc, filler.parent / "train", keep=2, model=model, optimizer=opt)
        with pytest.raises(DiskFull, match=rf"writing {filler.parent}/train/checkpoints/\.step-00000001\.tmp: "
                                           r"3,151,880 bytes \(3\.01 MiB\) needed"):
            ckpt.save({"step": 1}, epoch=0, batch_in_epoch=1)
        assert complete_checkpoints(ckpt.root) == [] and not list(ckpt.root.glob(".step-*"))
        assert _free(filler.parent) == free  # the rerun gets all the space back
        with pytest.raises(DiskFull, match=r"best\.safetensors: 1,050,624 bytes"):  # the weights alone
            with small_disk(tmp_path / "disk2", size_kib=512):
                ckpt.best_path = tmp_path / "disk2" / "best.safetensors"
                ckpt.save_best(model)


def test_library_writes_on_a_full_disk_map_to_disk_full(tmp_path):
    """Writers of compress and ship (safetensors, ONNX, JSON) are reached through the error wrapper the
    CLI applies to every stage (zuoxiao.core.errors.user_error)."""
    import torch
    from safetensors.torch import save_file

    with small_disk(tmp_path / "disk", size_kib=256) as filler:
        disk = filler.parent
        try:
            save_file({"w": torch.zeros(100_000)}, str(disk / "model.safetensors"))
        except Exception as err:  # noqa: BLE001 - safetensors raises its own type, naming no path
            mapped = user_error(err)
        assert isinstance(mapped, DiskFull) and mapped.exit_code == EXIT_BAD_INPUT
        try:
            with open(disk / "card.json", "w") as f:
                f.write("x" * 100_000)
        except OSError as err:
            err.filename = str(disk / "card.json")  # as os-level calls (open, copy) report it
            mapped = user_error(err)
        assert isinstance(mapped, DiskFull)
        assert str(mapped).startswith(f"no space left on device writing {disk / 'card.json'}: more space "
                                      "needed, 0 bytes")
        # Beam re-raises a worker's OSError as text: still a full disk, not exit 1
        beam = RuntimeError("OSError: [Errno 28] No space left on device [while running 'WriteShards/Write']")
        assert isinstance(user_error(beam), DiskFull)
