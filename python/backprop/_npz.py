"""Reading .npz archives safely: no pickle, and one clear error for any damage."""

from __future__ import annotations

import numpy as np


def read_npz(path):
    """All arrays of the .npz archive at `path`, as {name: array}.

    Missing or unreadable paths raise OSError as usual; anything wrong with
    the content (not a zip, truncated, a single .npy array, pickled objects)
    raises ValueError saying what.
    """
    with open(path, "rb") as file:
        try:
            archive = np.load(file, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it is a single .npy array, not an .npz archive")
            with archive:
                return {name: archive[name] for name in archive.files}
        except Exception as error:  # zipfile, zlib, format and pickle refusals alike
            raise ValueError(str(error)) from None
