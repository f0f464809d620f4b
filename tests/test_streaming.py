"""Streamed data: sources give the in-memory loaders' values, split views, batch_loader, the load-or-stream decision,
its refusals, chunked evaluation on streamed splits, and a peak-memory bound on a few hundred MB file."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import vaekit
from vaekit.data import load_data
from vaekit.data.streaming import RowView, batch_loader, check_batch_fits, is_streamed
from vaekit.errors import DataError, ResourceError

SMALL = "100"  # bytes: a memory limit every test file exceeds, so it streams
LARGE = "1G"  # one they all fit: loaded into memory


def _both(spec, **options):
    """(in-memory bundle, streamed bundle) of the same data with the same options."""
    memory, streamed = load_data(spec, memory_limit=LARGE, **options), load_data(spec, memory_limit=SMALL, **options)
    assert not any(is_streamed(s.x) for s in memory.splits.values())
    assert all(is_streamed(s.x) for s in streamed.splits.values())
    return memory, streamed


def _assert_same(memory, streamed, exact: bool = True):
    assert streamed.splits.keys() == memory.splits.keys()
    assert (streamed.value_kind, streamed.event_shape, streamed.num_classes, streamed.class_names) == \
        (memory.value_kind, memory.event_shape, memory.num_classes, memory.class_names)
    for name, split in memory.splits.items():
        got = streamed.splits[name]
        assert got.x.shape == split.x.shape and got.x.dtype == torch.float32
        if exact:
            assert torch.equal(got.x[:], split.x), name
        else:
            torch.testing.assert_close(got.x[:], split.x, rtol=0, atol=1e-5)
        assert (got.y is None) == (split.y is None) and (split.y is None or torch.equal(got.y, split.y))
        index = torch.randperm(len(split), generator=torch.Generator().manual_seed(1))[:17]
        torch.testing.assert_close(got.x[index], split.x[index], rtol=0, atol=0 if exact else 1e-5)  # any order
        torch.testing.assert_close(got.x[3:9], split.x[3:9], rtol=0, atol=0 if exact else 1e-5)


def test_npy_grey_images_stream_the_in_memory_values(tmp_path):
    path = tmp_path / "grey.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (120, 9, 7), dtype=np.uint8))
    memory, streamed = _both(path)
    assert memory.value_kind == "unit" and memory.event_shape == (1, 9, 7)  # grey levels scaled to [0, 1]
    _assert_same(memory, streamed)


def test_npy_colour_images_in_hwc_layout_stream_the_same(tmp_path):
    path = tmp_path / "rgb.npy"
    np.save(path, np.random.default_rng(1).random((60, 5, 6, 3)).astype(np.float32))
    memory, streamed = _both(path, valid_fraction=0.2, test_fraction=0.0, seed=3)
    assert memory.event_shape == (3, 5, 6)
    _assert_same(memory, streamed)


def test_npy_tabular_reals_are_standardised_with_the_training_statistics(tmp_path):
    path = tmp_path / "table.npy"
    np.save(path, np.random.default_rng(2).normal(3.0, 5.0, (300, 6)))
    memory, streamed = _both(path)
    assert memory.value_kind == "real"
    np.testing.assert_allclose(streamed.standardizer.mean, memory.standardizer.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.standardizer.scale, memory.standardizer.scale, rtol=1e-12)
    _assert_same(memory, streamed, exact=False)


def _write_idx(path, array: np.ndarray, compress: bool = False):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    (gzip.open(path.with_name(path.name + ".gz"), "wb") if compress else open(path, "wb")).write(data)


def _idx_folder(folder, compress: bool = False):
    rng = np.random.default_rng(3)
    folder.mkdir()
    for part, n in (("train", 60), ("t10k", 12)):
        _write_idx(folder / f"{part}-images-idx3-ubyte", rng.integers(0, 256, (n, 6, 5), dtype=np.uint8), compress)
        _write_idx(folder / f"{part}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8), compress)
    return folder


def test_uncompressed_idx_files_stream_the_in_memory_values(tmp_path):
    root = _idx_folder(tmp_path / "mnist")
    memory, streamed = _both("mnist", root=root)
    assert len(streamed.split("train")) == 50 and len(streamed.split("valid")) == 10
    _assert_same(memory, streamed)


def test_gzip_idx_files_over_the_limit_are_refused_with_a_hint_to_gunzip(tmp_path):
    root = _idx_folder(tmp_path / "mnist", compress=True)
    assert not is_streamed(load_data("mnist", root=root, memory_limit=LARGE).split("train").x)
    with pytest.raises(ResourceError) as error:
        load_data("mnist", root=root, memory_limit=SMALL)
    message = str(error.value)
    assert "\n" not in message and "gunzip" in message and "100 bytes" in message and "data.memory_limit" in message


def test_image_folder_of_pngs_streams_the_same_images_and_labels(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    for label in ("cat", "dog"):
        (tmp_path / "pets" / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (4, 5), dtype=np.uint8)).save(tmp_path / "pets" / label / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)).save(tmp_path / "pets" / "dog" / "rgb.png")
    memory, streamed = _both(tmp_path / "pets")
    assert memory.event_shape == (3, 4, 5) and memory.class_names == ("cat", "dog")  # one colour image: all RGB
    _assert_same(memory, streamed)


def test_binarize_threshold_and_limit_apply_to_streamed_splits(tmp_path):
    path = tmp_path / "grey.npy"
    np.save(path, np.random.default_rng(5).integers(0, 256, (80, 4, 4), dtype=np.uint8))
    _assert_same(*_both(path, binarize="threshold", limit=20))


def test_dynamic_binarize_keeps_grey_training_rows_and_fixed_evaluation_draws(tmp_path):
    path = tmp_path / "grey.npy"
    np.save(path, np.random.default_rng(6).integers(0, 256, (800, 4, 4), dtype=np.uint8))
    memory, streamed = _both(path, binarize="dynamic")
    assert streamed.dynamic_binarize and streamed.value_kind == "binary"
    assert torch.equal(streamed.split("train").x[:], memory.split("train").x)  # the training loop draws per batch
    valid = streamed.split("valid").x
    values = valid[:]
    assert set(values.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(valid[torch.arange(len(valid)).flip(0)], values.flip(0))  # one draw per example
    grey = load_data(path).split("valid").x  # the draws follow the grey levels: mostly 1 where the pixel is light
    assert float(values[grey > 0.9].mean()) > 0.85 and float(values[grey < 0.1].mean()) < 0.15


def test_the_memory_budget_decides_when_no_limit_is_given(tmp_path, monkeypatch):
    path = tmp_path / "grey.npy"
    np.save(path, np.zeros((50, 8, 8), dtype=np.uint8))
    monkeypatch.setenv("VAEKIT_MAX_MEMORY", "2K")
    assert is_streamed(load_data(path).split("train").x)
    monkeypatch.setenv("VAEKIT_MAX_MEMORY", "1G")
    assert not is_streamed(load_data(path).split("train").x)


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_formats_that_cannot_stream_are_refused_in_one_line(tmp_path, suffix):
    x = np.random.default_rng(7).normal(size=(200, 3))  # 2.3 KiB as float32
    path = tmp_path / f"table{suffix}"
    np.savetxt(path, x, delimiter=",") if suffix == ".csv" else np.savez(path, x=x)
    assert not is_streamed(load_data(path, memory_limit=LARGE).split("train").x)
    with pytest.raises(ResourceError) as error:
        load_data(path, memory_limit=SMALL)
    message = str(error.value)
    assert "\n" not in message and ".npy" in message and "KiB" in message and "memory_limit" in message


def test_a_memory_limit_too_small_for_one_batch_is_refused(tmp_path):
    path = tmp_path / "grey.npy"
    np.save(path, np.zeros((50, 8, 8), dtype=np.uint8))
    train = load_data(path, memory_limit=SMALL).split("train")
    assert check_batch_fits(train, 4, 1024) == 4 * 64 * 4
    with pytest.raises(ResourceError) as error:
        check_batch_fits(train, 16, 1024)
    assert "\n" not in str(error.value) and "train.batch_size" in str(error.value)
    with pytest.raises(ResourceError, match="5 batches"):  # 2 workers read 2 batches ahead each
        check_batch_fits(train, 4, 4096, workers=2)


def test_rows_behave_like_the_tensor_where_the_training_loop_touches_them(tmp_path):
    path = tmp_path / "grey.npy"
    np.save(path, np.arange(20 * 9, dtype=np.uint8).reshape(20, 3, 3))
    x = load_data(path, memory_limit=SMALL, valid_fraction=0, test_fraction=0).split("train").x
    assert is_streamed(x)
    assert (len(x), x.shape, x.ndim, x.dtype, x.device) == (20, torch.Size([20, 1, 3, 3]), 4, torch.float32,
                                                            torch.device("cpu"))
    assert x.to("cpu") is x and x.to(torch.float32) is x
    torch.testing.assert_close(x[-1], torch.arange(171, 180, dtype=torch.float32).reshape(1, 3, 3) / 255)
    with pytest.raises(IndexError):
        x[torch.tensor([0, 20])]
    with pytest.raises(DataError):
        x.to(torch.float64)


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_loader_yields_every_example_once_in_the_given_order(tmp_path, workers):
    path = tmp_path / "grey.npy"
    np.save(path, np.random.default_rng(8).integers(0, 256, (90, 4, 4), dtype=np.uint8))
    memory, streamed = _both(path)
    order = torch.randperm(len(memory.split("train")), generator=torch.Generator().manual_seed(0))
    batches = list(order.split(16))  # the last one is short
    for bundle in (memory, streamed):
        got = list(batch_loader(bundle.split("train"), batches, workers=workers))
        assert [len(b) for b in got] == [len(b) for b in batches]
        assert torch.equal(torch.cat([b.x for b in got]), memory.split("train").x[order])


def _tiny_model(bundle):
    config = vaekit.ModelConfig(latent_dim=3)
    config.network.hidden = [16]
    return vaekit.build_model(vaekit.resolve_model_config(config, bundle)).eval()


def test_chunked_evaluation_embedding_and_scores_match_on_streamed_splits(tmp_path):
    from vaekit.analysis import encode_dataset
    from vaekit.apps.anomaly import anomaly_scores
    from vaekit.evaluate import evaluate

    path = tmp_path / "grey.npy"
    np.save(path, np.random.default_rng(9).integers(0, 256, (150, 5, 5), dtype=np.uint8))
    memory, streamed = _both(path)
    model = _tiny_model(memory)
    x_mem, x_str = memory.split("train").x, streamed.split("train").x
    torch.manual_seed(0)
    expected = evaluate(model, x_mem, iw_samples=4, batch_size=32)
    torch.manual_seed(0)
    assert evaluate(model, x_str, iw_samples=4, batch_size=32) == expected
    a, b = encode_dataset(model, x_mem, batch_size=32), encode_dataset(model, x_str, batch_size=32)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.kl_per_dim, b.kl_per_dim)
    np.testing.assert_array_equal(anomaly_scores(model, x_mem, k=3), anomaly_scores(model, x_str, k=3))


def test_imputation_of_streamed_rows_writes_into_an_output_array(tmp_path):
    from vaekit.apps.impute import impute

    path = tmp_path / "grey.npy"
    np.save(path, np.random.default_rng(10).integers(0, 256, (40, 4, 4), dtype=np.uint8))
    memory, streamed = _both(path, valid_fraction=0, test_fraction=0)
    model = _tiny_model(memory)
    mask = (torch.rand(memory.split("train").x.shape, generator=torch.Generator().manual_seed(0)) > 0.3).float()
    expected = impute(model, memory.split("train").x, mask, samples=5, batch_size=16)
    out = np.lib.format.open_memmap(tmp_path / "filled.npy", "w+", np.float32, tuple(expected.shape))
    got = impute(model, streamed.split("train").x, mask, samples=5, batch_size=16, out=out)
    assert got is out
    np.testing.assert_array_equal(np.asarray(out), expected.numpy())


PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, torch
    import vaekit
    from vaekit.analysis import encode_dataset
    from vaekit.data import load_data
    from vaekit.data.streaming import batch_loader, is_streamed

    def maxrss(who=resource.RUSAGE_SELF):
        return resource.getrusage(who).ru_maxrss * 1024  # Linux: KiB

    torch.set_num_threads(1)
    path, limit = sys.argv[1], sys.argv[2]
    base = maxrss()  # Python, torch and vaekit imported; nothing read yet
    bundle = load_data(path, memory_limit=limit, valid_fraction=0, test_fraction=0)  # includes the scan pass
    train = bundle.split("train")
    config = vaekit.ModelConfig(latent_dim=4)
    config.network.hidden = [32]
    model = vaekit.build_model(vaekit.resolve_model_config(config, bundle)).eval()
    seen = 0
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for batch in batch_loader(train, order.split(512), workers=0):  # read here, where RSS is measured
            seen += len(batch)
            model.encode(batch.x)
    embedding = encode_dataset(model, train.x, batch_size=1024)
    print(json.dumps({"streamed": is_streamed(train.x), "n": len(train), "seen": seen, "base": base,
                      "peak": maxrss(), "encoded": len(embedding)}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB and madvise are Linux's")
def test_streaming_a_file_much_larger_than_the_limit_keeps_resident_memory_bounded(tmp_path):
    """A 235 MB uint8 file (940 MB as float32) under a 64 MiB limit: loading (its scan pass), one batch_loader
    pass (read in the measured process: workers=0) and a chunked embedding. Peak resident memory may exceed what
    the process held with Python, torch and vaekit imported (`base`) by at most the limit plus a fixed 96 MiB
    margin: the model and the allocator's slack (a few MB), the (N, D) embedding (10 MB), the scan's 4 MiB chunks
    and their copies (about 25 MB), and the mapped pages of one slice before they are released. Measured: 43 MB
    over `base`; 268 MB when the mapped pages are never released (the whole file); 940 MB if it were loaded."""
    n, side = 300_000, 28
    path = tmp_path / "big.npy"
    data = np.lib.format.open_memmap(path, "w+", np.uint8, (n, side, side))
    for lo in range(0, n, 50_000):  # written in chunks: the test process stays small too
        data[lo : lo + 50_000] = np.random.default_rng(lo).integers(0, 256, (1, side, side), dtype=np.uint8)
    del data
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path), "64M"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["streamed"] and report["seen"] == n and report["encoded"] == n
    margin = 64 * 2**20 + 96 * 2**20
    assert report["peak"] - report["base"] < margin, report


def test_training_on_streamed_data_equals_training_in_memory(tmp_path):
    # The loop reads a streamed split through batch_loader (a worker process reading ahead), in the same
    # seeded order as in-memory slicing: the same losses, epoch by epoch.
    import vaekit

    x = (np.random.default_rng(0).random((600, 1, 6, 6)) * 255).astype(np.uint8)
    np.save(tmp_path / "grey.npy", x)
    histories = []
    for limit in (None, "60K"):
        overrides = [f"data.name={tmp_path / 'grey.npy'}", "train.epochs=2", "train.progress=false",
                     "model.latent_dim=3", "model.network.hidden=[16]", "data.workers=1", "train.batch_size=50"]
        if limit:
            overrides.append(f"data.memory_limit={limit}")
        result = vaekit.fit(vaekit.build_run_config(None, overrides))
        histories.append([(r["train_loss"], r["valid_loss"]) for r in result.history])
    np.testing.assert_allclose(np.array(histories[0]), np.array(histories[1]), rtol=1e-6)
    with pytest.raises(vaekit.errors.ResourceError, match="over the memory limit"):
        vaekit.fit(vaekit.build_run_config(None, [f"data.name={tmp_path / 'grey.npy'}", "data.memory_limit=4K",
                                                  "train.progress=false"]))


def test_the_cli_refuses_a_memory_limit_too_small_for_one_batch_in_one_line(tmp_path):
    np.save(tmp_path / "grey.npy", (np.random.default_rng(0).random((300, 1, 6, 6)) * 255).astype(np.uint8))
    out = subprocess.run([sys.executable, "-m", "vaekit", "train", "--data", str(tmp_path / "grey.npy"),
                          "--set", "data.memory_limit=4K", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "over the memory limit" in out.stderr, out.stderr
    assert not (tmp_path / "run").exists()
