"""backprop.datasets: the shipped digits, IDX files (raw and gzip), Fashion-MNIST
folders, CSV and .npz files; good files and every kind of bad one."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from backprop import datasets
from backprop.datasets import load_csv, load_digits, load_fashion_mnist, load_idx, load_npz

# IDX type codes (LeCun's format description) and the dtypes they hold.
IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array, code=None):
    """The IDX encoding of `array`: magic (0, 0, type, ndim), big-endian sizes, big-endian data."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.type] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, data, compress=False):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# -- the shipped digits ---------------------------------------------------------
def test_load_digits_shape_range_and_labels():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    assert set(np.unique(y)) == set(range(10))


def test_digits_licence_ships_with_the_data():
    from importlib import resources
    text = resources.files("backprop").joinpath("data/README.md").read_text()
    assert "CC BY 4.0" in text and "UCI" in text


# -- IDX: good files ------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_load_idx_round_trips_every_type(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    path = write(tmp_path / "a-idx3-ubyte", idx_bytes(array), compress)
    loaded = load_idx(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize("shape", [(7,), (2, 3), (2, 1, 3, 2), (0, 28, 28)])
def test_load_idx_any_rank_and_empty(tmp_path, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    np.testing.assert_array_equal(load_idx(write(tmp_path / "x", idx_bytes(array))), array)


def test_load_idx_accepts_str_and_pathlike(tmp_path):
    path = write(tmp_path / "labels", idx_bytes(np.array([1, 2, 3], np.uint8)))
    np.testing.assert_array_equal(load_idx(str(path)), load_idx(path))


# -- IDX: bad files -------------------------------------------------------------
def good_idx():
    return idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("data, message", [
    (b"", "bad magic number empty"),
    (b"\x00\x00", "bad magic number"),
    (b"\x01\x00\x08\x01" + b"\x00" * 8, "bad magic number 01000801"),   # first byte must be 0
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "bad magic number"),      # unknown type code
    (b"\x00\x00\x08\x00", "bad magic number"),                          # zero dimensions
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),      # three sizes announced, one given
    (good_idx()[:-1], "truncated"),
    (good_idx()[:20], "truncated"),
    (good_idx() + b"\x00", "trailing data"),
    (b"P5\n28 28\n255\n" + b"\x00" * 784, "not an IDX file"),          # a PGM image
], ids=["empty", "short", "bad-first-byte", "bad-type", "zero-dims", "short-header", "one-byte-short",
        "half-data", "trailing", "other-format"])
def test_load_idx_refuses_malformed_files(tmp_path, data, message, compress):
    path = write(tmp_path / "bad-idx", data, compress)
    with pytest.raises(ValueError, match=message) as info:
        load_idx(path)
    assert str(path) in str(info.value)


def test_load_idx_sizes_in_the_message(tmp_path):
    path = write(tmp_path / "short", good_idx()[:-4])
    with pytest.raises(ValueError, match=r"sizes \(2, 3, 4\) need 40 bytes but the file has 36 \(truncated\)"):
        load_idx(path)


@pytest.mark.parametrize("cut", [10, 25, -4, -1], ids=["in-header", "in-data", "in-crc", "last-byte"])
def test_load_idx_refuses_truncated_gzip(tmp_path, cut):
    data = gzip.compress(good_idx())
    path = write(tmp_path / "x.gz", data[:cut])
    with pytest.raises(ValueError, match="gzip stream is damaged or truncated|not an IDX file|truncated"):
        load_idx(path)


def test_load_idx_refuses_corrupted_gzip(tmp_path):
    data = bytearray(gzip.compress(good_idx()))
    data[-6] ^= 0xFF  # the CRC no longer matches
    with pytest.raises(ValueError, match="gzip stream is damaged"):
        load_idx(write(tmp_path / "x.gz", bytes(data)))


def test_load_idx_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "nothing-here")
    with pytest.raises(IsADirectoryError):
        load_idx(tmp_path)


# -- Fashion-MNIST ----------------------------------------------------------------
def fake_fashion(folder, n_train=6, n_test=4, compress=True, naming="dash"):
    """The four IDX files of Fashion-MNIST with random content, under `naming`'s file names."""
    rng = np.random.default_rng(1)
    arrays = {}
    for part, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        arrays[part] = (images, labels)
        for stem, array in zip(datasets.FASHION_MNIST_FILES[part], (images, labels)):
            name = stem.replace("-idx", ".idx") if naming == "dot" else stem
            if compress:
                name += ".gz"
            write(folder / name, idx_bytes(array), compress)
    return arrays


@pytest.mark.parametrize("compress, naming", [(True, "dash"), (False, "dash"), (False, "dot")])
def test_load_fashion_mnist_from_a_folder(tmp_path, compress, naming):
    arrays = fake_fashion(tmp_path, compress=compress, naming=naming)
    (X_train, y_train), (X_test, y_test) = load_fashion_mnist(tmp_path)
    assert X_train.shape == (6, 784) and X_test.shape == (4, 784)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    np.testing.assert_allclose(X_train, arrays["train"][0].reshape(6, -1) / np.float32(255))
    np.testing.assert_array_equal(y_train, arrays["train"][1])
    np.testing.assert_array_equal(y_test, arrays["test"][1])
    assert 0 <= X_test.min() and X_test.max() <= 1


def test_load_fashion_mnist_float64(tmp_path):
    fake_fashion(tmp_path)
    (X_train, _), _ = load_fashion_mnist(str(tmp_path), dtype=np.float64)
    assert X_train.dtype == np.float64


def test_load_fashion_mnist_dtype_by_name(tmp_path):
    fake_fashion(tmp_path)
    (X_train, _), _ = load_fashion_mnist(tmp_path, dtype="float64")
    assert X_train.dtype == np.float64


def test_load_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    fake_fashion(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message and "zalandoresearch" in message


def test_load_fashion_mnist_default_location(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_fashion_mnist()
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"), str(tmp_path)))
    fake_fashion(tmp_path)
    (X_train, _), _ = load_fashion_mnist()
    assert X_train.shape == (6, 784)


def test_load_fashion_mnist_refuses_mismatched_files(tmp_path):
    fake_fashion(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(5, np.uint8)), compress=True)
    with pytest.raises(ValueError, match="expected n×28×28 images and n labels"):
        load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_reports_a_corrupt_file(tmp_path):
    fake_fashion(tmp_path)
    write(tmp_path / "t10k-images-idx3-ubyte.gz", good_idx()[:-3], compress=True)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        load_fashion_mnist(tmp_path)


# -- CSV --------------------------------------------------------------------------
def test_load_csv_numbers_with_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3.5,4,1\n\n5,6,2\n")
    X, y = load_csv(path)
    np.testing.assert_array_equal(X, [[1, 2], [3.5, 4], [5, 6]])
    assert y.dtype == np.int64 and list(y) == [0, 1, 2]


def test_load_csv_without_header_gzip_and_label_column(tmp_path):
    path = tmp_path / "d.csv.gz"
    with gzip.open(path, "wt") as file:
        file.write("0,1.5,2\r\n1,2.5,3\r\n")
    X, y = load_csv(path, label_column=0)
    np.testing.assert_array_equal(X, [[1.5, 2], [2.5, 3]])
    np.testing.assert_array_equal(y, [0, 1])


def test_load_csv_labels_float_or_text(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("1,0.5\n2,1.25\n")
    _, y = load_csv(path)
    assert y.dtype == np.float64 and list(y) == [0.5, 1.25]
    path.write_text("x,kind\n1, cat\n2,dog\n")
    _, y = load_csv(path)
    assert y.dtype.kind == "U" and list(y) == ["cat", "dog"]


def test_load_csv_other_delimiter(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("1;2;1\n3;4;0\n")
    X, y = load_csv(path, delimiter=";")
    assert X.shape == (2, 2) and list(y) == [1, 0]


@pytest.mark.parametrize("text, message", [
    ("", "holds no rows"),
    ("\n\n", "holds no rows"),
    ("a,b,c\n", "a header but no data"),
    ("1\n2\n", "at least one feature column"),
    ("1,2,0\n3,0\n", "data row 2 has 2 fields, expected 3"),
    ("1,2,0\n3,x,1\n", "a feature is not a number"),
    ("1,2,0\n1,,0\n", "a feature is not a number"),
])
def test_load_csv_refuses_bad_files(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_csv(path)
    assert str(path) in str(info.value)


def test_load_csv_first_row_with_an_empty_cell_is_data_not_header(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("1,,0\n2,3,1\n")
    with pytest.raises(ValueError, match="a feature is not a number"):
        load_csv(path)


@pytest.mark.parametrize("column", [3, 7, -4])
def test_load_csv_label_column_out_of_range(tmp_path, column):
    path = tmp_path / "small.csv"
    path.write_text("1,2,0\n2,3,1\n")
    with pytest.raises(ValueError, match="label_column"):
        load_csv(path, label_column=column)


def test_load_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_csv(tmp_path / "absent.csv")


# -- .npz -------------------------------------------------------------------------
def test_load_npz(tmp_path):
    X, y = np.arange(6.0).reshape(3, 2), np.array([0, 1, 0])
    np.savez(tmp_path / "d.npz", X=X, y=y, extra=np.zeros(1))
    X2, y2 = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


def test_load_npz_refuses_bad_files(tmp_path):
    np.savez(tmp_path / "no_y.npz", X=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"expected arrays 'X' and 'y', found \['X'\]"):
        load_npz(tmp_path / "no_y.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        load_npz(tmp_path / "single.npy")
    np.savez(tmp_path / "objects.npz", X=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match="cannot read features and labels"):
        load_npz(tmp_path / "objects.npz")  # never unpickles
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="garbage.npz"):
        load_npz(tmp_path / "garbage.npz")
    good = (tmp_path / "good.npz")
    np.savez(good, X=np.zeros((50, 50)), y=np.zeros(50))
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="cut.npz"):
        load_npz(tmp_path / "cut.npz")
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "absent.npz")
