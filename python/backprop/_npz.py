"""Reading .npz archives safely: regular files only, no pickle, sizes checked before decompressing.

Every reader of the package opens files through ``open_regular``: a device
(``/dev/zero`` never ends), a FIFO (opening it blocks until a writer comes)
or a socket is refused with ValueError before anything is read. An archive's
members are read one at a time: each .npy header first, then exactly the
bytes it declares, and only when the zip entry holds that many; so an
archive costs at most the memory its arrays declare, whatever its zip
entries claim or its compressed data expands to.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import zipfile

import numpy as np

_KINDS = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO (named pipe)",
          stat.S_IFSOCK: "a socket"}


class ArchiveError(ValueError):
    """What is wrong with an archive's content (the message does not name the file)."""


def open_regular(path, mode="rb"):
    """`path` opened for reading when it is a regular file (symbolic links followed); else ValueError.

    Opened without blocking (a FIFO would otherwise wait for a writer) and
    checked on the open descriptor, so the file cannot be swapped between the
    check and the read. Missing or unreadable paths and folders raise OSError as open() does.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:  # a socket cannot be opened at all (ENXIO): say what it is
        if error.errno == errno.ENXIO and stat.S_ISSOCK(os.stat(path).st_mode):
            raise ValueError(f"{os.fsdecode(path)} is a socket, not a regular file: backprop reads only "
                             "regular files") from None
        raise
    try:
        kind = stat.S_IFMT(os.fstat(descriptor).st_mode)
        if kind == stat.S_IFDIR:  # as open() says it
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fsdecode(path))
        if kind != stat.S_IFREG:
            raise ValueError(f"{os.fsdecode(path)} is {_KINDS.get(kind, 'not a regular file')}, not a regular "
                             "file: backprop reads only regular files")
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, mode)
    except BaseException:
        os.close(descriptor)
        raise


def members(archive):
    """{array name: ZipInfo}: np.savez writes one NAME.npy member per array."""
    found = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise ArchiveError(f"it holds {info.filename!r}, which is not an .npy array")
        name = info.filename[:-4]
        if name in found:
            raise ArchiveError(f"it holds two members named {info.filename!r}")
        found[name] = info
    return found


def open_member(archive, name, info):
    """A stream of member `info`: stored or deflated (zipfile bounds what deflate produces per read;
    it does not for bzip2 and lzma, which np.savez never writes)."""
    if info.flag_bits & 0x1:
        raise ArchiveError(f"array {name} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveError(f"array {name} uses a compression method np.savez never writes")
    return archive.open(info)


def npy_header(name, stream):
    """(shape, fortran_order, dtype) from the .npy header at the start of `stream`."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise ArchiveError(f"array {name} is in .npy format version {version}, which is not supported")


def check_stored_size(name, info, file_size):
    """A stored (uncompressed) member must lie within the file: a small file that declares a large
    array is refused before anything is allocated."""
    if info.compress_type == zipfile.ZIP_STORED and (
            info.compress_size != info.file_size or info.header_offset + info.compress_size > file_size):
        raise ArchiveError(f"array {name} is truncated")


def read_exactly(stream, nbytes):
    """(a bytearray of nbytes, how many of them `stream` filled): read in place, so the bytes become an
    array's own (writeable) memory without a second copy; fewer filled means the stream ended early."""
    data = bytearray(nbytes)
    view, filled = memoryview(data), 0
    while filled < nbytes:
        got = stream.readinto(view[filled:])
        if not got:
            break
        filled += got
    return data, filled


def read_member(archive, name, info, accept):
    """The array of member `info` (array `name`) once accept(shape, dtype) has passed (it raises to
    refuse) and the zip entry holds exactly the bytes the .npy header declares; nothing is
    decompressed before that."""
    with open_member(archive, name, info) as stream:
        shape, fortran_order, dtype = npy_header(name, stream)
        accept(shape, dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != stream.tell() + nbytes:
            raise ArchiveError(f"array {name} holds {info.file_size - stream.tell()} bytes of data, its shape "
                               f"{shape} needs {nbytes}")
        data, filled = read_exactly(stream, nbytes)
        if filled < nbytes:
            raise ArchiveError(f"array {name} is truncated")
        stream.read(1)  # zipfile checks the CRC on reaching the end
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")


def _plain_data(name):
    def accept(shape, dtype):
        if dtype.hasobject or dtype.kind not in "biufcUSM":
            raise ArchiveError(f"array {name} has dtype {dtype}, which holds no plain data")
    return accept


def read_npz(path, names=None):
    """The arrays of the .npz archive at `path`, as {name: array}: all, or those of `names` it holds
    (the others are never decompressed).

    Missing or unreadable paths raise OSError as usual; anything but a
    regular file, and anything wrong with the content (not a zip, truncated,
    a single .npy array, pickled objects, sizes that disagree), raises
    ValueError saying what.
    """
    with open_regular(path) as file:
        file_size = os.fstat(file.fileno()).st_size
        try:
            with zipfile.ZipFile(file) as archive:
                found = members(archive)
                if names is not None:
                    found = {name: info for name, info in found.items() if name in names}
                for name, info in found.items():  # every declaration, before anything is decompressed
                    check_stored_size(name, info, file_size)
                return {name: read_member(archive, name, info, _plain_data(name)) for name, info in found.items()}
        except ArchiveError:
            raise
        except zipfile.BadZipFile as error:
            file.seek(0)
            if file.read(6) == b"\x93NUMPY":
                raise ValueError("it is a single .npy array, not an .npz archive") from None
            raise ValueError(f"it is not an .npz archive ({error})") from None
        except Exception as error:  # zlib, EOF and .npy format errors alike
            raise ValueError(str(error)) from None
