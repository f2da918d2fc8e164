"""get_dataset: digits, CIFAR pickle folders (fixture in the real layout), image folders, synthetic, errors."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest
import torch

from seadeploy.data import cifar, get_dataset, list_datasets
from seadeploy.data.base import channel_stats
from seadeploy.errors import ConfigError, InputError
from seadeploy.runfolder import Checkpoint
from seadeploy.train.__main__ import main as train_main


def test_registry_names():
    assert list_datasets() == ["cifar10", "cifar100", "digits", "imagefolder", "synthetic"]
    with pytest.raises(ConfigError, match="Did you mean 'cifar10'"):
        get_dataset("cifar11")
    with pytest.raises(ConfigError, match="split"):
        get_dataset("digits", split="val")


def test_digits_split_is_real_stratified_and_deterministic():
    train, test = get_dataset("digits"), get_dataset("digits", split="test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (3, 32, 32)
    assert train.labels.dtype == torch.int64 and test.info.num_classes == 10
    counts = test.labels.bincount(minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: 20 % of each class
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # grayscale replicated to RGB
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    again = get_dataset("digits", split="test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    # the split is a partition: no test image occurs in the training set
    seen = {hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in train.images}
    dup = sum(hashlib.sha1(x.numpy().tobytes()).hexdigest() in seen for x in test.images)
    assert dup <= 2, f"{dup} test images also in train"
    assert 0.2 < train.info.mean[0] < 0.4 and train.info.std[0] > 0.2
    assert get_dataset("digits", input_size=48).images.shape[-2:] == (48, 48)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_fixture_loads_through_real_code_path(cifar_root, name):
    root, written = cifar_root
    for split in ("train", "test"):
        ds = get_dataset(name, split=split, root=root)
        x, y = written[name][split]
        assert torch.equal(ds.images, torch.from_numpy(x)), "pixel layout (N, 3, 32, 32) must match the pickle rows"
        assert torch.equal(ds.labels, torch.from_numpy(y.astype(np.int64)))
    assert ds.info.num_classes == (10 if name == "cifar10" else 100)
    assert ds.info.classes[:2] == ("class0", "class1")
    assert ds.info.mean[0] == pytest.approx(0.49 if name == "cifar10" else 0.507, abs=0.01)
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    same = get_dataset(name, split="test", root=folder)  # the extracted folder itself also works
    assert torch.equal(same.images, ds.images)
    assert get_dataset(name, split="test", root=root, input_size=40).images.shape[-2:] == (40, 40)


def test_cifar_missing_folder_says_how_to_get_it(tmp_path, capsys):
    with pytest.raises(InputError, match=r"cifar-10-batches-py.*--download"):
        get_dataset("cifar10", root=tmp_path)
    code = train_main(["--dataset", "cifar100", "--data-root", str(tmp_path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cifar100 not found") and err.count("\n") == 1


def test_cifar_corrupt_and_malicious_pickles(cifar_root, capsys):
    root, _ = cifar_root
    batch = root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(b"\x80\x02}q\x00(X\x04\x00\x00\x00da")  # truncated pickle
    with pytest.raises(InputError, match="not a valid CIFAR pickle"):
        get_dataset("cifar10", split="test", root=root)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    batch.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(InputError, match="not allowed"):
        get_dataset("cifar10", split="test", root=root)
    batch.write_bytes(pickle.dumps({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, protocol=2))
    with pytest.raises(InputError, match="expected data"):
        get_dataset("cifar10", split="test", root=root)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    code = train_main(["--dataset", "cifar10", "--data-root", str(root), "--out", str(root / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "data_batch_3" in err and err.count("\n") == 1


def test_cifar_download_extracts_and_checks_md5(tmp_path, monkeypatch, cifar_writer):
    src = tmp_path / "src"
    written = cifar_writer(src, "cifar10", per_batch=5)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    payload = archive.read_bytes()
    monkeypatch.setitem(cifar._SOURCES["cifar10"], "md5", hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(cifar.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload))
    ds = get_dataset("cifar10", split="test", root=tmp_path / "dl", download=True)
    assert torch.equal(ds.images, torch.from_numpy(written["test"][0]))
    monkeypatch.setitem(cifar._SOURCES["cifar10"], "md5", "0" * 32)
    with pytest.raises(InputError, match="MD5"):
        cifar.download_cifar("cifar10", tmp_path / "dl2")


def test_cifar_download_without_network(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(cifar.urllib.request, "urlopen", offline)
    with pytest.raises(InputError, match="could not download.*extract it into"):
        get_dataset("cifar100", root=tmp_path, download=True)
    assert not list(tmp_path.glob("*.tar.gz")), "no half-written archive may remain"


def test_imagefolder_decodes_resizes_and_keeps_class_order(image_root):
    train = get_dataset("imagefolder", split="train", root=image_root, input_size=32)
    test = get_dataset("imagefolder", split="test", root=image_root, input_size=32)
    assert train.images.shape == (12, 3, 32, 32) and test.images.shape == (6, 3, 32, 32)
    assert train.info.classes == ("cat", "dog", "fish") and train.info.num_classes == 3
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # each class was written as a flat colour 60·c + 20 (grayscale ones too): decoding keeps it
    for label in range(3):
        assert (test.images[test.labels == label].float() - (60 * label + 20)).abs().max() <= 1
    assert get_dataset("imagefolder", split="test", root=image_root).images.shape[-1] == 224


def test_imagefolder_errors(tmp_path, image_root, capsys):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(InputError, match="no classes"):
        get_dataset("imagefolder", root=tmp_path / "empty")
    code = train_main(["--dataset", "imagefolder", "--data-root", str(tmp_path / "empty"),
                       "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "no classes with images" in err and err.count("\n") == 1
    with pytest.raises(InputError, match="val"):
        get_dataset("imagefolder", split="test", root=tmp_path / "empty")
    with pytest.raises(InputError, match="--data-root"):
        get_dataset("imagefolder")
    (image_root / "train" / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png"):
        get_dataset("imagefolder", root=image_root, input_size=32)
    (image_root / "val" / "bird").mkdir()
    (image_root / "val" / "bird" / "b.png").write_bytes((image_root / "val" / "cat" / "0.png").read_bytes())
    with pytest.raises(InputError, match="bird"):
        get_dataset("imagefolder", split="test", root=image_root, input_size=32)


def test_synthetic_is_seeded_and_configurable():
    a = get_dataset("synthetic", num_samples=20, num_classes=3, seed=5)
    b = get_dataset("synthetic", num_samples=20, num_classes=3, seed=5)
    assert torch.equal(a.images, b.images) and int(a.labels.max()) <= 2 and len(a) == 20
    other_split = get_dataset("synthetic", split="test", num_samples=20, num_classes=3, seed=5)
    assert not torch.equal(a.images, other_split.images)
    with pytest.raises(ConfigError, match="no option 'num_sample'"):
        get_dataset("synthetic", num_sample=3)
    with pytest.raises(ConfigError, match="takes none"):
        get_dataset("digits", num_samples=3)


@pytest.mark.parametrize("name", ["cifar10", "imagefolder"])
def test_training_cli_runs_on_file_datasets(name, cifar_root, image_root, tmp_path, capsys):
    root = cifar_root[0] if name == "cifar10" else image_root
    out = tmp_path / "run"
    code = train_main(["--model", "resnet20_cifar", "--attn", "se", "--dataset", name, "--data-root", str(root),
                       "--input-size", "32", "--epochs", "1", "--batch-size", "4", "--limit-train", "12",
                       "--out", str(out), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["dataset"] == name and summary["epochs"] == 1
    ckpt = Checkpoint.load(out)
    assert ckpt.spec.num_classes == (10 if name == "cifar10" else 3) and ckpt.extra["data_root"] == str(root)


def test_channel_stats_match_float64_mean_and_std():
    # channel_stats sums integers chunk by chunk (no float64 copy of the set); same figures as the float64 formula
    g = torch.Generator().manual_seed(0)
    for n in (1, 3, 130):  # 130 spans three chunks of 64
        x = torch.randint(0, 256, (n, 3, 9, 7), generator=g, dtype=torch.uint8)
        x[:, 1] //= 4  # channels with different statistics
        ref = x.to(torch.float64).div(255.0)
        mean, std = channel_stats(x)
        assert mean == tuple(round(float(v), 4) for v in ref.mean(dim=(0, 2, 3)))
        assert std == tuple(round(float(v), 4) for v in ref.std(dim=(0, 2, 3)))
